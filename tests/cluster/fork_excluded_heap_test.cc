// ForkExcludedHeap: libraft's larger blocks live in regions a fork leaves out
// and that go back to the system once empty; small blocks and foreign
// pointers are malloc's.
#include "cluster/fork_excluded_heap.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace catga::internal {
namespace {

TEST(ForkExcludedHeap, SmallBlocksAreMallocsLargeOnesAreRegions) {
  ForkExcludedHeap heap;
  void* small = heap.allocate(64);
  void* large = heap.allocate(8192);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  EXPECT_FALSE(heap.owns(small));
  EXPECT_TRUE(heap.owns(large));
  std::memset(large, 0x5a, 8192);
  heap.release(small);
  heap.release(large);
  heap.release(nullptr);
}

TEST(ForkExcludedHeap, RegionsGoBackOnceEmpty) {
  ForkExcludedHeap heap;
  // Enough blocks to fill several regions, freed oldest first as the log is.
  std::vector<void*> blocks;
  for (int i = 0; i < 4000; ++i) blocks.push_back(heap.allocate(16 * 1024));
  const std::size_t filled = heap.regions();
  EXPECT_GE(filled, 4000u * 16 * 1024 / ForkExcludedHeap::kRegion);
  for (void* b : blocks) heap.release(b);
  EXPECT_EQ(heap.regions(), 1u);  // the one blocks are cut from next, emptied
  EXPECT_EQ(heap.mapped_bytes(), ForkExcludedHeap::kRegion);
  // The others are unmapped (by the heap's own thread): the first block's
  // page is gone from the process.
  heap.settle();
  const long page = ::sysconf(_SC_PAGESIZE);
  void* first = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(blocks.front()) &
                                        ~static_cast<std::uintptr_t>(page - 1));
  errno = 0;
  EXPECT_NE(::msync(first, static_cast<std::size_t>(page), MS_ASYNC), 0);
  EXPECT_EQ(errno, ENOMEM);
  // A block too large for a shared region gets one of its own, gone with it.
  void* big = heap.allocate(ForkExcludedHeap::kRegion);
  EXPECT_EQ(heap.regions(), 2u);
  heap.release(big);
  EXPECT_EQ(heap.regions(), 1u);
}

TEST(ForkExcludedHeap, ReallocateKeepsContentsAndZeroedIsZero) {
  ForkExcludedHeap heap;
  auto* p = static_cast<char*>(heap.allocate(2000));
  for (int i = 0; i < 2000; ++i) p[i] = static_cast<char>(i);
  auto* q = static_cast<char*>(heap.reallocate(p, 100000));
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(q[i], static_cast<char>(i));
  // malloc's block (from before the heap was installed) grows into a region.
  auto* m = static_cast<char*>(std::malloc(100));
  std::memset(m, 7, 100);
  auto* grown = static_cast<char*>(heap.reallocate(m, 5000));
  EXPECT_TRUE(heap.owns(grown));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(grown[i], 7);
  auto* z = static_cast<unsigned char*>(heap.allocate_zeroed(100, 64));
  for (int i = 0; i < 6400; ++i) ASSERT_EQ(z[i], 0);
  EXPECT_EQ(heap.allocate_zeroed(SIZE_MAX / 2, 4), nullptr);  // overflow
  heap.release(q);
  heap.release(grown);
  heap.release(z);
}

// libraft grows the array of the entries it loads at start by realloc, one
// batch at a time. A block grown step by step must move only a logarithmic
// number of times (a copy per step made a start with a few thousand entries
// take minutes), and keep what was written into it.
TEST(ForkExcludedHeap, ABlockGrownStepByStepMovesRarely) {
  ForkExcludedHeap heap;
  constexpr std::size_t kStep = 40;  // about one raft_entry
  constexpr std::size_t kSteps = 20000;
  void* block = nullptr;
  std::size_t moves = 0;
  for (std::size_t i = 1; i <= kSteps; ++i) {
    void* grown = heap.reallocate(block, i * kStep);
    ASSERT_NE(grown, nullptr);
    if (grown != block) ++moves;
    block = grown;
    std::memset(static_cast<char*>(block) + (i - 1) * kStep, static_cast<int>(i % 251), kStep);
  }
  // From 1 KiB to 800 KB, growing by half each move: about 17 moves (and the
  // ones while the block is still malloc's).
  EXPECT_LT(moves, 64u);
  for (std::size_t i = 1; i <= kSteps; ++i) {
    ASSERT_EQ(static_cast<unsigned char*>(block)[(i - 1) * kStep], i % 251) << "step " << i;
  }
  // Shrinking keeps the block where it is.
  EXPECT_EQ(heap.reallocate(block, 1000), block);
  heap.release(block);
}

// The point of the heap: a forked child does not have the regions (so the
// fork copies no page tables for them and leaves the parent's pages writable).
TEST(ForkExcludedHeap, ForkedChildDoesNotSeeTheRegions) {
  ForkExcludedHeap heap;
  auto* block = static_cast<char*>(heap.allocate(64 * 1024));
  std::memset(block, 1, 64 * 1024);
  const long page = ::sysconf(_SC_PAGESIZE);
  void* page_of = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(block) & ~static_cast<std::uintptr_t>(page - 1));
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // msync fails with ENOMEM on an address range that is not mapped.
    const bool unmapped = ::msync(page_of, static_cast<std::size_t>(page), MS_ASYNC) != 0 && errno == ENOMEM;
    ::_exit(unmapped ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child still maps the block";
  EXPECT_EQ(::msync(page_of, static_cast<std::size_t>(page), MS_ASYNC), 0);  // the parent does
  EXPECT_EQ(block[1000], 1);
  heap.release(block);
}

}  // namespace
}  // namespace catga::internal
