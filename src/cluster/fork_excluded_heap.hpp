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
// What: larger blocks (the log's entries, received messages) come from regions
// mapped by the heap itself and marked MADV_DONTFORK: the child does not see
// them (it must not touch libraft's memory — it encodes the state machine
// only), the fork copies no page tables for them, and the parent's pages stay
// writable across it. A region is filled front to back and returned to the
// system when its last block is freed — by a thread of the heap's own, since
// unmapping megabytes is itself slow on the loop thread; the log is freed
// oldest first, so regions empty in order. Small blocks (under kSmallest) go to malloc: few, and
// they would pin a region each.
//
// Threading: every member is safe to call from any thread (one mutex; libraft
// allocates on the loop thread and in libuv's thread pool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "cluster/fork_excluded_heap.h"

namespace catga::internal {

class ForkExcludedHeap {
 public:
  static constexpr std::size_t kSmallest = 1024;          // smaller blocks: malloc
  static constexpr std::size_t kRegion = 8u << 20;        // a region's usual size
  static constexpr std::size_t kHeader = 16;              // before each block: region, size

  ForkExcludedHeap() = default;
  ~ForkExcludedHeap();  // unmaps every region (blocks still held are gone), joins the unmapper
  ForkExcludedHeap(const ForkExcludedHeap&) = delete;
  ForkExcludedHeap& operator=(const ForkExcludedHeap&) = delete;

  // malloc/calloc/realloc/free semantics; a pointer this heap did not give out
  // (malloc's) is passed to free/realloc, so blocks from before the heap was
  // installed are freed correctly. nullptr when out of memory.
  void* allocate(std::size_t size);
  void* allocate_zeroed(std::size_t count, std::size_t size);
  void* reallocate(void* block, std::size_t size);
  void release(void* block);

  bool owns(const void* block) const;
  std::size_t regions() const;       // regions mapped now
  std::size_t mapped_bytes() const;  // their total size
  // Waits until every region given back so far is unmapped (tests).
  void settle();

  // The heap libraft uses in node mode (installed once by catga_raft_open).
  static ForkExcludedHeap& process();

 private:
  struct Region {
    char* base;
    std::size_t size;
    std::size_t used = 0;  // bytes handed out from the front
    std::size_t live = 0;  // blocks not yet freed
  };
  Region* region_of_locked(const void* block) const;
  Region* map_region_locked(std::size_t size);
  void unmap_locked(Region* r);  // hands it to the unmapper
  void unmapper();

  mutable std::mutex mu_;
  std::condition_variable reap_cv_;
  std::vector<std::pair<char*, std::size_t>> to_unmap_;
  std::size_t unmapping_ = 0;  // taken by the unmapper, not yet unmapped
  bool stopping_ = false;
  std::thread unmapper_;  // started with the first region given back
  std::map<std::uintptr_t, Region*> by_base_;
  Region* current_ = nullptr;  // where small regions' blocks are cut from
  std::size_t mapped_ = 0;
};

}  // namespace catga::internal
