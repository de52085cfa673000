#include "cluster/fork_excluded_heap.hpp"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/log.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define CATGA_FX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CATGA_FX_ASAN 1
#endif
#endif

#ifdef CATGA_FX_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#define CATGA_FX_UNCHECKED __attribute__((no_sanitize_address))
#else
#define CATGA_FX_UNCHECKED
#endif

namespace catga::internal {

namespace {

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// A block's header (its size) lies in poisoned memory under ASan: only these
// two touch it.
CATGA_FX_UNCHECKED void write_size(char* header, std::size_t size) { __builtin_memcpy(header, &size, sizeof size); }
CATGA_FX_UNCHECKED std::size_t read_size(const char* header) {
  std::size_t size;
  __builtin_memcpy(&size, header, sizeof size);
  return size;
}

// Gives every page of [p, p + n) its memory now (on the heap's thread), so
// that the loop thread's first writes take no page fault.
CATGA_FX_UNCHECKED void populate(char* p, std::size_t n) {
#ifdef MADV_POPULATE_WRITE
  if (::madvise(p, n, MADV_POPULATE_WRITE) == 0) return;
#endif
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (std::size_t at = 0; at < n; at += page) static_cast<volatile char*>(p)[at] = 0;  // kernel before 5.14
}

#ifdef CATGA_FX_ASAN
void poison(const void* p, std::size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
void unpoison(const void* p, std::size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
void watch_for_leaks(void* p, std::size_t n) { __lsan_register_root_region(p, n); }
void stop_watching(void* p, std::size_t n) { __lsan_unregister_root_region(p, n); }
void check_not_freed(const void* block) {
  if (!__asan_address_is_poisoned(block)) return;
  std::fprintf(stderr, "catga: ForkExcludedHeap: %p freed twice (or not a block of the heap's)\n", block);
  __sanitizer_print_stack_trace();
  std::abort();
}
#else
void poison(const void*, std::size_t) {}
void unpoison(const void*, std::size_t) {}
void watch_for_leaks(void*, std::size_t) {}
void stop_watching(void*, std::size_t) {}
void check_not_freed(const void*) {}
#endif

}  // namespace

ForkExcludedHeap::ForkExcludedHeap(std::size_t reservation, std::chrono::milliseconds warm_for)
    : warm_for_(warm_for) {
  // Under a limit on address space the reservation leaves most of it to the
  // rest of the process.
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    reservation = std::min<std::size_t>(reservation, static_cast<std::size_t>(limit.rlim_cur / 8));
  }
  for (std::size_t want = reservation / kRegion * kRegion; want >= kRegion; want = want / 2 / kRegion * kRegion) {
    void* p = ::mmap(nullptr, want, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) continue;
    ::madvise(p, want, MADV_DONTFORK);  // best effort: without it the fork only costs more
    base_ = static_cast<char*>(p);
    reserved_ = want;
    count_ = want / kRegion;
    break;
  }
  regions_ = std::make_unique<Region[]>(count_);
}

ForkExcludedHeap::~ForkExcludedHeap() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  return_cv_.notify_all();
  if (returner_.joinable()) returner_.join();
  for (std::size_t i = 0; i < count_; i += regions_[i].span) {
    if (regions_[i].state == Slot::used) stop_watching(at(i), regions_[i].span * kRegion);
    if (regions_[i].state != Slot::fresh) unpoison(at(i), regions_[i].span * kRegion);
  }
  if (base_ != nullptr) ::munmap(base_, reserved_);
}

ForkExcludedHeap& ForkExcludedHeap::process() {
  static auto* heap = new ForkExcludedHeap();  // never destroyed: libraft may free at exit
  return *heap;
}

std::size_t ForkExcludedHeap::open_run_locked(std::size_t span) {
  std::size_t first = SIZE_MAX;
  if (span == 1 && !warm_.empty()) {
    first = warm_.back().index;  // the most recently emptied: its pages are the warmest
    warm_.pop_back();
  } else {
    // First fit: the reservation is used from its front, so few mappings.
    std::size_t run = 0;
    for (std::size_t i = 0; i < count_ && first == SIZE_MAX; ++i) {
      const Slot s = regions_[i].state;
      run = (s == Slot::fresh || s == Slot::cold || s == Slot::warm) ? run + 1 : 0;
      if (run == span) first = i + 1 - span;
    }
    if (first == SIZE_MAX) return SIZE_MAX;
    for (std::size_t i = first; i < first + span; ++i) {
      if (regions_[i].state == Slot::fresh &&
          ::mprotect(at(i), kRegion, PROT_READ | PROT_WRITE) != 0) {
        return SIZE_MAX;  // out of memory (strict overcommit): the regions made writable stay cold
      }
      if (regions_[i].state == Slot::fresh) regions_[i].state = Slot::cold;
    }
    for (std::size_t i = first; i < first + span; ++i) {
      if (regions_[i].state == Slot::warm) {
        warm_.erase(std::find_if(warm_.begin(), warm_.end(), [i](const Warm& w) { return w.index == i; }));
      }
    }
  }
  for (std::size_t i = first; i < first + span; ++i) {
    regions_[i].state = Slot::used;
    regions_[i].span = 1;
  }
  Region& r = regions_[first];
  r.span = span;
  r.used = 0;
  in_use_ += span;
  if (span == 1 && warm_.empty() && warm_for_.count() != 0) {
    want_spare_ = true;  // the log grows: the next region gets its pages on the heap's thread
    wake_returner_locked();
  }
  poison(at(first), span * kRegion);
  watch_for_leaks(at(first), span * kRegion);
  return first;
}

void ForkExcludedHeap::retire_locked(std::size_t index) {
  const std::size_t span = regions_[index].span;
  stop_watching(at(index), span * kRegion);
  in_use_ -= span;
  if (span > 1 || warm_for_.count() == 0) {
    give_back_locked(index);
    return;
  }
  regions_[index].state = Slot::warm;
  warm_.push_back({index, std::chrono::steady_clock::now()});
  if (warm_.size() > kMaxWarmRegions) {
    const std::size_t oldest = warm_.front().index;
    warm_.erase(warm_.begin());
    give_back_locked(oldest);
  } else {
    wake_returner_locked();  // to give it back once it has been warm long enough
  }
}

void ForkExcludedHeap::give_back_locked(std::size_t index) {
  for (std::size_t i = index; i < index + regions_[index].span; ++i) regions_[i].state = Slot::returning;
  to_return_.push_back(index);
  wake_returner_locked();
}

void ForkExcludedHeap::wake_returner_locked() {
  if (stopping_) return;
  if (!returner_.joinable()) returner_ = std::thread([this] { returner(); });
  return_cv_.notify_all();
}

void ForkExcludedHeap::returner() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stopping_) return;  // the destructor unmaps the whole range
    // Warm regions unused for warm_for_ go back (oldest first).
    const auto now = std::chrono::steady_clock::now();
    while (!warm_.empty() && now - warm_.front().since >= warm_for_) {
      const std::size_t oldest = warm_.front().index;
      warm_.erase(warm_.begin());
      regions_[oldest].state = Slot::returning;
      to_return_.push_back(oldest);
    }
    if (to_return_.empty() && want_spare_) {
      prepare_spare(lock);
      continue;
    }
    if (to_return_.empty()) {
      if (warm_.empty()) {
        return_cv_.wait(lock);
      } else {
        return_cv_.wait_until(lock, warm_.front().since + warm_for_);
      }
      continue;
    }
    std::vector<std::pair<std::size_t, std::size_t>> batch;
    for (std::size_t i : to_return_) batch.emplace_back(i, regions_[i].span);
    to_return_.clear();
    returning_ = batch.size();
    lock.unlock();
    for (auto [index, span] : batch) ::madvise(at(index), span * kRegion, MADV_DONTNEED);
    lock.lock();
    for (auto [index, span] : batch) {
      for (std::size_t i = index; i < index + span; ++i) {
        regions_[i].state = Slot::cold;
        regions_[i].span = 1;
      }
    }
    returning_ = 0;
    return_cv_.notify_all();
  }
}

void ForkExcludedHeap::prepare_spare(std::unique_lock<std::mutex>& lock) {
  want_spare_ = false;
  std::size_t index = SIZE_MAX;
  if (warm_.empty()) {
    for (std::size_t i = 0; i < count_ && index == SIZE_MAX; ++i) {
      if (regions_[i].state == Slot::fresh || regions_[i].state == Slot::cold) index = i;
    }
  }
  if (index == SIZE_MAX) {
    return_cv_.notify_all();
    return;
  }
  const bool fresh = regions_[index].state == Slot::fresh;
  regions_[index].state = Slot::preparing;
  preparing_ = true;
  lock.unlock();
  const bool writable = !fresh || ::mprotect(at(index), kRegion, PROT_READ | PROT_WRITE) == 0;
  if (writable) populate(at(index), kRegion);
  lock.lock();
  preparing_ = false;
  if (writable) {
    regions_[index].state = Slot::warm;
    warm_.push_back({index, std::chrono::steady_clock::now()});
  } else {
    regions_[index].state = Slot::fresh;
  }
  return_cv_.notify_all();
}

void ForkExcludedHeap::settle() {
  std::unique_lock lock(mu_);
  return_cv_.wait(lock, [this] {
    return (to_return_.empty() && returning_ == 0 && !want_spare_ && !preparing_) || !returner_.joinable();
  });
}

void* ForkExcludedHeap::fall_back(std::size_t size) {
  if (fallbacks_.fetch_add(1, std::memory_order_relaxed) == 0) {
    if (reserved_ == 0) {
      log().warn("libraft's fork-excluded heap could not reserve address space: its larger blocks come from "
                 "malloc, and the snapshot's fork copies their page tables");
    } else {
      log().warn("libraft's fork-excluded heap is full ({} MiB reserved): larger blocks come from malloc until "
                 "regions are emptied, and the snapshot's fork copies their page tables",
                 reserved_ >> 20);
    }
  }
  return std::malloc(size);
}

void* ForkExcludedHeap::allocate(std::size_t size) {
  if (size < kSmallest) return std::malloc(size);
  if (size > std::numeric_limits<std::size_t>::max() / 2) return nullptr;
  const std::size_t need = kHeader + round_up(size, 16);
  char* header = nullptr;
  {
    std::lock_guard lock(mu_);
    if (need > kRegion / 4) {
      // A large block gets a run of regions of its own, emptied when it is freed.
      const std::size_t first = open_run_locked((need + kRegion - 1) / kRegion);
      if (first != SIZE_MAX) {
        regions_[first].live.store(1, std::memory_order_relaxed);
        regions_[first].used = need;
        header = at(first);
      }
    } else {
      if (current_ == SIZE_MAX || kRegion - regions_[current_].used < need) {
        if (current_ != SIZE_MAX && regions_[current_].live.load(std::memory_order_acquire) == 1) {
          regions_[current_].used = 0;  // all its blocks are gone: cut again from its front
        } else {
          const std::size_t next = open_run_locked(1);
          if (next != SIZE_MAX) regions_[next].live.store(1, std::memory_order_relaxed);  // held while current
          const std::size_t full = current_;
          current_ = next;
          if (full != SIZE_MAX && regions_[full].live.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            retire_locked(full);
          }
        }
      }
      if (current_ != SIZE_MAX) {
        Region& r = regions_[current_];
        header = at(current_) + r.used;
        r.used += need;
        r.live.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  if (header == nullptr) return fall_back(size);
  write_size(header, size);
  unpoison(header + kHeader, size);
  return header + kHeader;
}

void* ForkExcludedHeap::allocate_zeroed(std::size_t count, std::size_t size) {
  if (size != 0 && count > std::numeric_limits<std::size_t>::max() / size) return nullptr;
  const std::size_t total = count * size;
  if (total < kSmallest) return std::calloc(count, size);
  void* p = allocate(total);
  if (p != nullptr) std::memset(p, 0, total);
  return p;
}

void ForkExcludedHeap::release(void* block) {
  if (!owns(block)) {
    std::free(block);
    return;
  }
  char* header = static_cast<char*>(block) - kHeader;
  check_not_freed(block);
  poison(block, read_size(header));
  // Only the region's count is written: no page of the block is touched.
  const std::size_t index = index_of(header);
  if (regions_[index].live.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard lock(mu_);
    retire_locked(index);
  }
}

void* ForkExcludedHeap::reallocate(void* block, std::size_t size) {
  if (block == nullptr) return allocate(size);
  if (!owns(block)) {
    // malloc's block: stays with malloc while small, moves here when it grows.
    if (size < kSmallest) return std::realloc(block, size);
    void* moved = allocate(size);
    if (moved == nullptr) return nullptr;
    std::memcpy(moved, block, std::min(size, ::malloc_usable_size(block)));
    std::free(block);
    return moved;
  }
  // The block's header holds its capacity. A block that still fits stays
  // where it is; one that grows moves to one at least half as large again,
  // so a block grown step by step is copied O(log n) times, not once per
  // step: libraft grows the array of the entries it loads at start by
  // realloc, a batch at a time (uv_segment.c, extendEntries). glibc grows
  // such a block in place (mremap), and a copy per step made a start with
  // a few thousand entries take minutes.
  const std::size_t old = read_size(static_cast<char*>(block) - kHeader);
  if (size <= old) {
    const std::size_t kept = std::max<std::size_t>(size, 1);  // its first byte tells a live block (ASan)
    poison(static_cast<char*>(block) + kept, old - kept);  // ASan: only `size` bytes are the caller's
    unpoison(block, kept);
    return block;
  }
  const std::size_t grown = old + old / 2;
  const std::size_t capacity = grown > size && grown > old ? grown : size;
  void* moved = allocate(capacity);
  if (moved == nullptr) return nullptr;
  unpoison(block, old);  // the whole capacity is copied; release poisons it again
  std::memcpy(moved, block, old);
  if (owns(moved)) poison(static_cast<char*>(moved) + size, capacity - size);
  release(block);
  return moved;
}

std::size_t ForkExcludedHeap::regions() const {
  std::lock_guard lock(mu_);
  return in_use_;
}

std::size_t ForkExcludedHeap::warm_regions() const {
  std::lock_guard lock(mu_);
  return warm_.size();
}

std::size_t ForkExcludedHeap::mapped_bytes() const {
  std::lock_guard lock(mu_);
  return (in_use_ + warm_.size()) * kRegion;
}

std::size_t ForkExcludedHeap::fallback_blocks() const { return fallbacks_.load(std::memory_order_relaxed); }

}  // namespace catga::internal

using catga::internal::ForkExcludedHeap;
extern "C" void* catga_fx_malloc(void*, std::size_t size) { return ForkExcludedHeap::process().allocate(size); }
extern "C" void catga_fx_free(void*, void* ptr) { ForkExcludedHeap::process().release(ptr); }
extern "C" void* catga_fx_calloc(void*, std::size_t count, std::size_t size) {
  return ForkExcludedHeap::process().allocate_zeroed(count, size);
}
extern "C" void* catga_fx_realloc(void*, void* ptr, std::size_t size) {
  return ForkExcludedHeap::process().reallocate(ptr, size);
}
