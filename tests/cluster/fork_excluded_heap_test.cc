// ForkExcludedHeap: libraft's larger blocks live in regions of one
// reservation a fork leaves out; emptied regions are cut from again and give
// their pages back once unused; a full reservation falls back to malloc;
// small blocks and foreign pointers are malloc's; threads share it; under
// AddressSanitizer its blocks are checked.
#include "cluster/fork_excluded_heap.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CATGA_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CATGA_TEST_ASAN 1
#endif
#endif
#if defined(CATGA_TEST_ASAN) || defined(__SANITIZE_THREAD__)
#define CATGA_TEST_SHADOW 1  // the sanitizer reserves terabytes of shadow memory
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CATGA_TEST_SHADOW 1
#endif
#endif

namespace catga::internal {
namespace {

void* page_of(const void* p) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  return reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~(page - 1));
}

// Whether the page holding `p` is in memory.
bool resident(const void* p) {
  unsigned char in = 0;
  if (::mincore(page_of(p), 1, &in) != 0) return false;
  return (in & 1) != 0;
}

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
  heap.release(std::malloc(5000));  // malloc's (from before the heap was installed)
}

// Blocks as the log's: enough to fill several regions, each page written.
std::vector<void*> fill(ForkExcludedHeap& heap, int count) {
  std::vector<void*> blocks;
  for (int i = 0; i < count; ++i) {
    blocks.push_back(heap.allocate(16 * 1024));
    std::memset(blocks.back(), 1, 16 * 1024);
  }
  return blocks;
}

TEST(ForkExcludedHeap, RegionsGoBackOnceEmpty) {
  ForkExcludedHeap heap(ForkExcludedHeap::kReservation, std::chrono::milliseconds(0));  // none kept warm
  std::vector<void*> blocks = fill(heap, 4000);
  EXPECT_GE(heap.regions(), 4000u * 16 * 1024 / ForkExcludedHeap::kRegion);
  for (void* b : blocks) heap.release(b);  // oldest first, as the log is freed
  EXPECT_EQ(heap.regions(), 1u);  // the one blocks are cut from next, emptied
  EXPECT_EQ(heap.warm_regions(), 0u);
  EXPECT_EQ(heap.mapped_bytes(), ForkExcludedHeap::kRegion);
  // The others gave their pages back (by the heap's own thread): the first
  // block's page is no longer in memory, the last one's is.
  heap.settle();
  EXPECT_FALSE(resident(blocks.front()));
  EXPECT_TRUE(resident(blocks.back()));
  // A block too large for a shared region gets a run of its own, gone with it.
  void* big = heap.allocate(ForkExcludedHeap::kRegion);  // and a header: two regions
  EXPECT_TRUE(heap.owns(big));
  EXPECT_EQ(heap.regions(), 3u);
  heap.release(big);
  EXPECT_EQ(heap.regions(), 1u);
  EXPECT_EQ(heap.fallback_blocks(), 0u);
}

// The log freed behind a snapshot is the memory of the log that follows:
// emptied regions keep their pages and are cut from again, the most recently
// emptied first. While the log grows, the heap's thread keeps one region
// ready, its pages already in memory.
TEST(ForkExcludedHeap, EmptiedRegionsStayWarmAndAreReused) {
  ForkExcludedHeap heap(ForkExcludedHeap::kReservation, std::chrono::hours(1));
  std::vector<void*> blocks = fill(heap, 4000);
  heap.settle();
  const std::size_t filled = heap.regions();
  EXPECT_EQ(heap.warm_regions(), 1u);  // the spare
  const char* base = static_cast<char*>(blocks.front()) - ForkExcludedHeap::kHeader;  // the reservation's start
  const auto region_of = [base](const void* p) {
    return static_cast<std::size_t>(static_cast<const char*>(p) - base) / ForkExcludedHeap::kRegion;
  };
  // Freed oldest first, a region is emptied with its newest block: the last
  // one emptied holds the newest block outside the current region.
  const std::size_t current = region_of(blocks.back());
  std::size_t last_emptied = SIZE_MAX;
  for (void* b : blocks) {
    if (region_of(b) != current) last_emptied = region_of(b);
  }
  for (void* b : blocks) heap.release(b);
  EXPECT_EQ(heap.regions(), 1u);
  EXPECT_EQ(heap.warm_regions(), filled);  // the emptied ones and the spare
  EXPECT_EQ(heap.mapped_bytes(), (filled + 1) * ForkExcludedHeap::kRegion);
  EXPECT_TRUE(resident(blocks.front()));
  // Blocks are cut from the current region until it is full, then from the
  // most recently emptied one.
  std::vector<void*> again;
  while (again.empty() || region_of(again.back()) == current) {
    again.push_back(heap.allocate(16 * 1024));
    ASSERT_LT(again.size(), 1100u);
  }
  EXPECT_EQ(region_of(again.back()), last_emptied);
  EXPECT_EQ(heap.warm_regions(), filled - 1);
  for (void* b : again) heap.release(b);
  EXPECT_EQ(heap.fallback_blocks(), 0u);
}

// Warm regions left unused give their pages back: an idle node holds none.
TEST(ForkExcludedHeap, UnusedWarmRegionsGoBack) {
  ForkExcludedHeap heap(ForkExcludedHeap::kReservation, std::chrono::milliseconds(50));
  std::vector<void*> blocks = fill(heap, 4000);
  for (void* b : blocks) heap.release(b);
  // Bounded wait for the heap's thread.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    heap.settle();
    if (heap.warm_regions() == 0 || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  heap.settle();
  EXPECT_EQ(heap.warm_regions(), 0u);
  EXPECT_FALSE(resident(blocks.front()));
  EXPECT_TRUE(resident(blocks.back()));  // the current region keeps its pages
  EXPECT_EQ(heap.mapped_bytes(), ForkExcludedHeap::kRegion);
}

// Emptied regions are cut from again: a heap whose reservation holds six
// regions serves far more than six regions' worth of blocks over time.
TEST(ForkExcludedHeap, EmptiedRegionsAreReused) {
  ForkExcludedHeap heap(6 * ForkExcludedHeap::kRegion);
  ASSERT_EQ(heap.reserved_bytes(), 6 * ForkExcludedHeap::kRegion);
  for (int round = 0; round < 20; ++round) {
    std::vector<void*> blocks;
    for (int i = 0; i < 1000; ++i) {  // about two regions
      blocks.push_back(heap.allocate(16 * 1024));
      ASSERT_TRUE(heap.owns(blocks.back())) << "round " << round << ", block " << i;
      std::memset(blocks.back(), round, 16 * 1024);
    }
    for (void* b : blocks) {
      ASSERT_EQ(static_cast<unsigned char*>(b)[100], round);
      heap.release(b);
    }
  }
  EXPECT_EQ(heap.fallback_blocks(), 0u);
}

// A full reservation hands larger blocks to malloc (freed by malloc), and
// the heap serves them again once regions are emptied.
TEST(ForkExcludedHeap, FullReservationFallsBackToMalloc) {
  ForkExcludedHeap heap(2 * ForkExcludedHeap::kRegion);
  std::vector<void*> blocks;
  for (int i = 0; i < 1500; ++i) {  // about three regions
    blocks.push_back(heap.allocate(16 * 1024));
    ASSERT_NE(blocks.back(), nullptr);
    std::memset(blocks.back(), 2, 16 * 1024);
  }
  EXPECT_TRUE(heap.owns(blocks.front()));
  EXPECT_FALSE(heap.owns(blocks.back()));
  EXPECT_GT(heap.fallback_blocks(), 0u);
  void* big = heap.allocate(3 * ForkExcludedHeap::kRegion);  // no run that long at all
  ASSERT_NE(big, nullptr);
  EXPECT_FALSE(heap.owns(big));
  heap.release(big);
  for (void* b : blocks) heap.release(b);
  void* again = heap.allocate(16 * 1024);
  EXPECT_TRUE(heap.owns(again));
  heap.release(again);
}

// No reservation at all (the system refused it): every block is malloc's.
TEST(ForkExcludedHeap, NoReservationMeansMalloc) {
  ForkExcludedHeap heap(0);
  EXPECT_EQ(heap.reserved_bytes(), 0u);
  void* block = heap.allocate(64 * 1024);
  ASSERT_NE(block, nullptr);
  EXPECT_FALSE(heap.owns(block));
  std::memset(block, 3, 64 * 1024);
  block = heap.reallocate(block, 128 * 1024);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(static_cast<unsigned char*>(block)[64 * 1024 - 1], 3);
  heap.release(block);
  EXPECT_EQ(heap.fallback_blocks(), 2u);
}

// Under a limit on address space the heap takes at most an eighth of it and
// still serves blocks (in a child: the limit is the process's).
#ifndef CATGA_TEST_SHADOW  // ASan's and TSan's shadow need an unlimited address space
TEST(ForkExcludedHeap, AddressSpaceLimitShrinksTheReservation) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct rlimit limit {};
    ::getrlimit(RLIMIT_AS, &limit);
    limit.rlim_cur = std::size_t{8} << 30;
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(2);
    ForkExcludedHeap heap;
    if (heap.reserved_bytes() == 0 || heap.reserved_bytes() > (std::size_t{1} << 30)) ::_exit(3);
    void* block = heap.allocate(64 * 1024);
    if (block == nullptr || !heap.owns(block)) ::_exit(4);
    std::memset(block, 1, 64 * 1024);
    heap.release(block);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: setrlimit failed, 3: reservation not within an eighth, 4: no block";
}
#endif

// libraft allocates on the loop thread and in libuv's pool, and a block may
// be freed by a thread other than the one that allocated it.
TEST(ForkExcludedHeap, ThreadsAllocateAndFreeEachOthersBlocks) {
  ForkExcludedHeap heap;
  constexpr int kBlocks = 20000;
  std::mutex mu;
  std::deque<std::pair<unsigned char*, std::size_t>> handed;  // from the producer to the consumer
  std::atomic<bool> bad{false};
  auto check_and_free = [&](unsigned char* p, std::size_t size) {
    if (p[0] != static_cast<unsigned char>(size) || p[size - 1] != static_cast<unsigned char>(size >> 3)) bad = true;
    heap.release(p);
  };
  std::thread producer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      const std::size_t size = 512 + static_cast<std::size_t>(i * 7919) % (48 * 1024);
      auto* p = static_cast<unsigned char*>(heap.allocate(size));
      if (p == nullptr) {
        bad = true;
        return;
      }
      p[0] = static_cast<unsigned char>(size);
      p[size - 1] = static_cast<unsigned char>(size >> 3);
      if (i % 3 == 0) {
        check_and_free(p, size);  // freed here
      } else {
        std::lock_guard lock(mu);
        handed.emplace_back(p, size);
      }
    }
  });
  std::thread consumer([&] {
    int freed = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (freed < kBlocks - (kBlocks + 2) / 3 && !bad && std::chrono::steady_clock::now() < deadline) {
      std::pair<unsigned char*, std::size_t> next{nullptr, 0};
      {
        std::lock_guard lock(mu);
        if (!handed.empty()) {
          next = handed.front();
          handed.pop_front();
        }
      }
      if (next.first == nullptr) {
        std::this_thread::yield();
        continue;
      }
      check_and_free(next.first, next.second);
      // and allocates a little itself
      void* own = heap.allocate(4096);
      if (own == nullptr) bad = true;
      heap.release(own);
      ++freed;
    }
  });
  producer.join();
  consumer.join();
  EXPECT_FALSE(bad);
  EXPECT_TRUE(handed.empty());
  EXPECT_LE(heap.regions(), 1u);
  EXPECT_EQ(heap.fallback_blocks(), 0u);
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
  const long page_size = ::sysconf(_SC_PAGESIZE);
  void* page = page_of(block);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // msync fails with ENOMEM on an address range that is not mapped.
    const bool unmapped = ::msync(page, static_cast<std::size_t>(page_size), MS_ASYNC) != 0 && errno == ENOMEM;
    ::_exit(unmapped ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child still maps the block";
  EXPECT_EQ(::msync(page, static_cast<std::size_t>(page_size), MS_ASYNC), 0);  // the parent does
  EXPECT_EQ(block[1000], 1);
  heap.release(block);
}

// Under AddressSanitizer the heap's blocks are checked as malloc's are: a
// freed block read, a write past a block's end and a second free are reported.
#ifdef CATGA_TEST_ASAN
TEST(ForkExcludedHeapAsan, ReadingAFreedBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ForkExcludedHeap heap;
        auto* block = static_cast<volatile char*>(heap.allocate(4096));
        heap.release(const_cast<char*>(block));
        std::printf("%d\n", block[100]);
      },
      "use-after-poison");
}

TEST(ForkExcludedHeapAsan, WritingPastABlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ForkExcludedHeap heap;
        auto* block = static_cast<volatile char*>(heap.allocate(3000));
        (void)heap.allocate(3000);  // the next block's header follows
        block[3000] = 1;
      },
      "use-after-poison");
}

// A block shrunk by reallocate stays where it is; what it gave up is poisoned.
TEST(ForkExcludedHeapAsan, ReadingPastAShrunkBlockIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ForkExcludedHeap heap;
        void* block = heap.allocate(4096);
        auto* kept = static_cast<volatile char*>(heap.reallocate(block, 2048));
        if (kept != block) std::abort();
        std::printf("%d\n", kept[3000]);
      },
      "use-after-poison");
}

TEST(ForkExcludedHeapAsan, FreeingTwiceIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        ForkExcludedHeap heap;
        void* block = heap.allocate(4096);
        (void)heap.allocate(4096);  // keeps the region in use
        heap.release(block);
        heap.release(block);
      },
      "freed twice");
}
#else
TEST(ForkExcludedHeapAsan, NeedsTheAsanPreset) {
  GTEST_SKIP() << "the heap's AddressSanitizer checks are tested in the asan preset (cmake --preset asan)";
}
#endif

}  // namespace
}  // namespace catga::internal
