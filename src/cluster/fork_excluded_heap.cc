#include "cluster/fork_excluded_heap.hpp"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

namespace catga::internal {

namespace {
std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }
}  // namespace

ForkExcludedHeap::~ForkExcludedHeap() {
  {
    std::lock_guard lock(mu_);
    while (!by_base_.empty()) unmap_locked(by_base_.begin()->second);
    stopping_ = true;
  }
  reap_cv_.notify_all();
  if (unmapper_.joinable()) unmapper_.join();
  for (auto [base, size] : to_unmap_) ::munmap(base, size);
}

void ForkExcludedHeap::unmapper() {
  std::unique_lock lock(mu_);
  for (;;) {
    reap_cv_.wait(lock, [this] { return stopping_ || !to_unmap_.empty(); });
    if (to_unmap_.empty()) return;  // stopping, nothing left
    auto batch = std::move(to_unmap_);
    to_unmap_.clear();
    unmapping_ = batch.size();
    lock.unlock();
    for (auto [base, size] : batch) ::munmap(base, size);
    lock.lock();
    unmapping_ = 0;
    reap_cv_.notify_all();
  }
}

void ForkExcludedHeap::settle() {
  std::unique_lock lock(mu_);
  reap_cv_.wait(lock, [this] { return (to_unmap_.empty() && unmapping_ == 0) || !unmapper_.joinable(); });
}

ForkExcludedHeap& ForkExcludedHeap::process() {
  static auto* heap = new ForkExcludedHeap();  // never destroyed: libraft may free at exit
  return *heap;
}

ForkExcludedHeap::Region* ForkExcludedHeap::map_region_locked(std::size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  ::madvise(p, size, MADV_DONTFORK);  // best effort: without it the fork only costs more
  auto* r = new (std::nothrow) Region{static_cast<char*>(p), size};
  if (r == nullptr) {
    ::munmap(p, size);
    return nullptr;
  }
  by_base_.emplace(reinterpret_cast<std::uintptr_t>(r->base), r);
  mapped_ += size;
  return r;
}

void ForkExcludedHeap::unmap_locked(Region* r) {
  by_base_.erase(reinterpret_cast<std::uintptr_t>(r->base));
  if (current_ == r) current_ = nullptr;
  mapped_ -= r->size;
  to_unmap_.emplace_back(r->base, r->size);
  delete r;
  if (stopping_) return;  // the destructor unmaps what is left
  if (!unmapper_.joinable()) unmapper_ = std::thread([this] { unmapper(); });
  reap_cv_.notify_all();
}

ForkExcludedHeap::Region* ForkExcludedHeap::region_of_locked(const void* block) const {
  const auto at = reinterpret_cast<std::uintptr_t>(block);
  auto it = by_base_.upper_bound(at);
  if (it == by_base_.begin()) return nullptr;
  --it;
  Region* r = it->second;
  return at < it->first + r->size ? r : nullptr;
}

void* ForkExcludedHeap::allocate(std::size_t size) {
  if (size < kSmallest) return std::malloc(size);
  if (size > std::numeric_limits<std::size_t>::max() / 2) return nullptr;
  const std::size_t need = kHeader + round_up(size, 16);
  std::lock_guard lock(mu_);
  Region* r = nullptr;
  if (need > kRegion / 4) {
    // A large block gets a region of its own, returned when it is freed.
    r = map_region_locked(round_up(need, static_cast<std::size_t>(::sysconf(_SC_PAGESIZE))));
  } else {
    if (current_ == nullptr || current_->size - current_->used < need) {
      Region* full = current_;
      current_ = map_region_locked(kRegion);
      if (full != nullptr && full->live == 0) unmap_locked(full);
    }
    r = current_;
  }
  if (r == nullptr) return nullptr;
  char* block = r->base + r->used;
  r->used += need;
  r->live++;
  std::memcpy(block, &r, sizeof r);
  std::memcpy(block + sizeof r, &size, sizeof size);
  return block + kHeader;
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
  if (block == nullptr) return;
  {
    std::lock_guard lock(mu_);
    if (Region* r = region_of_locked(block)) {
      // Only the region's count is written: no page of the block is touched.
      if (--r->live == 0 && r != current_) {
        unmap_locked(r);
      } else if (r->live == 0) {
        r->used = 0;  // the current region, empty: start again from its front
      }
      return;
    }
  }
  std::free(block);
}

void* ForkExcludedHeap::reallocate(void* block, std::size_t size) {
  if (block == nullptr) return allocate(size);
  std::size_t old = 0;
  {
    std::lock_guard lock(mu_);
    if (region_of_locked(block) == nullptr) old = std::numeric_limits<std::size_t>::max();
    else std::memcpy(&old, static_cast<char*>(block) - kHeader + sizeof(Region*), sizeof old);
  }
  if (old == std::numeric_limits<std::size_t>::max()) {
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
  if (size <= old) return block;
  const std::size_t grown = old + old / 2;
  void* moved = allocate(grown > size && grown > old ? grown : size);
  if (moved == nullptr) return nullptr;
  std::memcpy(moved, block, old);
  release(block);
  return moved;
}

bool ForkExcludedHeap::owns(const void* block) const {
  std::lock_guard lock(mu_);
  return region_of_locked(block) != nullptr;
}

std::size_t ForkExcludedHeap::regions() const {
  std::lock_guard lock(mu_);
  return by_base_.size();
}

std::size_t ForkExcludedHeap::mapped_bytes() const {
  std::lock_guard lock(mu_);
  return mapped_;
}

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
