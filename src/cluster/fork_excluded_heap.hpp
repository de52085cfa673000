// src/cluster/fork_excluded_heap.hpp — the memory libraft allocates (above
// all the log's entries) kept out of the snapshot child's fork.
//
// Why: a snapshot forks the node (snapshot_child.hpp). fork write-protects
// every private page of the parent, so the first write to each page after it
// faults. libraft frees the log behind a snapshot in one go, on the loop
// thread, when the snapshot is written: tens of thousands of free() calls whose
// chunk headers lie on pages untouched since the fork — one write fault per
// page, each a TLB shoot-down on a machine with threads on both cores (and far
// dearer in a virtual machine). With the log as large as the state (snapshots
// are due when the log has grown by a fraction of the last one) that was 0.6–3 s
// of loop thread, long enough for an election (docs/performance.md, "Soak").
//
// What: larger blocks (kSmallest and up: the log's entries, received
// messages) come from one range of address space the heap reserves when it is
// created (PROT_NONE until used, so it costs no memory) and marks
// MADV_DONTFORK: the child does not see it (it must not touch libraft's
// memory — it encodes the state machine only), the fork copies no page tables
// for it, and the parent's pages stay writable across it. The range is cut
// into regions of kRegion bytes; a region is filled front to back and is
// emptied when its last block is freed (the log is freed oldest first, so
// regions empty in order). An emptied region keeps its pages for a while
// (`warm_for`, at most kMaxWarmRegions of them) and is the next one blocks are
// cut from: the log freed behind a snapshot is the memory of the log that
// follows, as it was with malloc. While the log grows and no emptied region
// is at hand, the heap's thread prepares the next region
// (MADV_POPULATE_WRITE), so the loop thread takes no page fault for the log's
// fresh pages. Regions unused for `warm_for` give their pages back to the
// system (MADV_DONTNEED, on the heap's thread: it is slow on the loop
// thread), so an idle node holds none. A block too large for a shared region
// gets a run of regions of its own, given back when it is freed. Small blocks
// go to malloc: many, short-lived, and they would pin a region each.
//
// Cost: "is this block the heap's" is an address compare, so a small block's
// free is malloc's free plus that compare; a large block's free is one atomic
// decrement of its region's count (no page of the block is written); an
// allocation of kSmallest and up takes the heap's mutex (uncontended: a
// region is opened once per 8 MiB). Measured 2026-11-30 (commit ffe4ae9,
// docs/performance.md, "The fork-excluded heap's cost"): the first heap
// (a mutex and a std::map lookup on every free, a fresh mmap per region) took
// 2.3x the page faults per command of malloc and ran commands at 0.92x the
// build before it; this one takes 0.2x malloc's page faults and runs at 1.15x
// the first heap. When the reservation is full (or could not be made) larger
// blocks come from malloc, logged once: nothing fails, only those blocks are
// in the fork again.
//
// Sanitizers: under AddressSanitizer every byte of a region that is not inside
// a live block (headers, padding, freed blocks, the unused tail) is poisoned,
// so overflows and use-after-free on libraft's blocks are reported as
// "use-after-poison"; freeing a block twice aborts with a stack; live regions
// are LeakSanitizer root regions (pointers held in libraft's blocks keep
// malloc's blocks alive).
//
// Threading: every member is safe to call from any thread (libraft allocates
// on the loop thread and in libuv's thread pool).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cluster/fork_excluded_heap.h"

namespace catga::internal {

class ForkExcludedHeap {
 public:
  static constexpr std::size_t kSmallest = 1024;            // smaller blocks: malloc
  static constexpr std::size_t kRegion = 8u << 20;          // the unit blocks are cut from
  static constexpr std::size_t kHeader = 16;                // before each block: its capacity
  static constexpr std::size_t kMaxWarmRegions = 32;        // emptied regions that keep their pages
  static constexpr std::size_t kReservation = 32ull << 30;  // address space reserved (process())
  static constexpr std::chrono::milliseconds kWarmFor{10'000};

  // Reserves `reservation` bytes of address space (at most an eighth of
  // RLIMIT_AS; rounded down to regions; halved until the system grants it,
  // down to one region). A heap whose
  // reservation failed hands every block to malloc. An emptied region keeps
  // its pages for `warm_for` (zero: it gives them back at once).
  explicit ForkExcludedHeap(std::size_t reservation = kReservation,
                            std::chrono::milliseconds warm_for = kWarmFor);
  ~ForkExcludedHeap();  // gives the range back (blocks still held are gone), joins its thread
  ForkExcludedHeap(const ForkExcludedHeap&) = delete;
  ForkExcludedHeap& operator=(const ForkExcludedHeap&) = delete;

  // malloc/calloc/realloc/free semantics; a pointer this heap did not give out
  // (malloc's) is passed to free/realloc, so blocks from before the heap was
  // installed are freed correctly. nullptr when out of memory.
  void* allocate(std::size_t size);
  void* allocate_zeroed(std::size_t count, std::size_t size);
  void* reallocate(void* block, std::size_t size);
  void release(void* block);

  // Whether `block` lies in the reservation (no lock).
  bool owns(const void* block) const {
    return reinterpret_cast<std::uintptr_t>(block) - reinterpret_cast<std::uintptr_t>(base_) < reserved_;
  }
  std::size_t reserved_bytes() const { return reserved_; }
  std::size_t regions() const;           // regions holding blocks (or cut from next)
  std::size_t warm_regions() const;      // emptied regions keeping their pages (most recent last)
  std::size_t mapped_bytes() const;      // both together, in bytes
  std::size_t fallback_blocks() const;   // larger blocks malloc gave because the reservation was full
  // Waits until every region given back so far has returned its pages and a
  // spare region asked for is prepared (tests; warm regions are not given
  // back by it).
  void settle();

  // The heap libraft uses in node mode (installed once by catga_raft_open).
  static ForkExcludedHeap& process();

 private:
  enum class Slot : std::uint8_t { fresh, cold, preparing, warm, used, returning };
  struct Region {
    std::atomic<std::size_t> live{0};  // blocks not yet freed (+1 while blocks are cut from it)
    std::size_t used = 0;              // bytes handed out from the front (under mu_)
    std::size_t span = 1;              // regions of the run (first region of a large block's run)
    Slot state = Slot::fresh;
  };
  std::size_t index_of(const void* block) const {
    return static_cast<std::size_t>(static_cast<const char*>(block) - base_) / kRegion;
  }
  char* at(std::size_t index) const { return base_ + index * kRegion; }
  std::size_t open_run_locked(std::size_t span);  // SIZE_MAX when the reservation is full
  void retire_locked(std::size_t index);          // its last block is gone
  void give_back_locked(std::size_t index);       // to the returner thread
  void wake_returner_locked();
  void returner();
  void prepare_spare(std::unique_lock<std::mutex>& lock);  // one region with its pages, made warm
  void* fall_back(std::size_t size);

  char* base_ = nullptr;
  std::size_t reserved_ = 0;
  std::size_t count_ = 0;  // regions in the reservation
  std::unique_ptr<Region[]> regions_;

  mutable std::mutex mu_;
  std::size_t current_ = SIZE_MAX;  // where small blocks are cut from
  std::size_t in_use_ = 0;          // regions in state used
  struct Warm {
    std::size_t index;
    std::chrono::steady_clock::time_point since;
  };
  const std::chrono::milliseconds warm_for_;
  std::vector<Warm> warm_;  // oldest first
  std::vector<std::size_t> to_return_;
  std::size_t returning_ = 0;  // taken by the returner, pages not yet returned
  bool want_spare_ = false;    // a region was opened and none is warm: prepare one
  bool preparing_ = false;
  bool stopping_ = false;
  std::condition_variable return_cv_;
  std::thread returner_;  // started with the first region emptied
  std::atomic<std::size_t> fallbacks_{0};
};

}  // namespace catga::internal
