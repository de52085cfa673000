// ReadGate: reads waiting for an applied index are woken by advance(), given
// up by expire(), failed by close(); from any thread.
#include "cluster/read_gate.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "catga/testing.hpp"

using catga::Code;
using catga::Result;
using catga::internal::ReadGate;
using namespace catga::testing;

namespace {
const auto kFar = ReadGate::Clock::now() + std::chrono::hours(1);
}

TEST(ReadGate, AnAppliedIndexAnswersAtOnceALaterOneWhenApplyReachesIt) {
  ReadGate gate;
  gate.advance(5);
  std::vector<std::pair<int, bool>> seen;
  // wait() says whether the read waits.
  EXPECT_FALSE(gate.wait(5, kFar, [&](Result<void> r) { seen.push_back({5, r.has_value()}); }));
  EXPECT_TRUE(gate.wait(7, kFar, [&](Result<void> r) { seen.push_back({7, r.has_value()}); }));
  EXPECT_TRUE(gate.wait(6, kFar, [&](Result<void> r) { seen.push_back({6, r.has_value()}); }));
  EXPECT_EQ(seen, (std::vector<std::pair<int, bool>>{{5, true}}));
  gate.advance(6);
  EXPECT_EQ(seen, (std::vector<std::pair<int, bool>>{{5, true}, {6, true}}));
  gate.advance(4);  // never moves back
  gate.advance(9);
  EXPECT_EQ(seen, (std::vector<std::pair<int, bool>>{{5, true}, {6, true}, {7, true}}));
}

TEST(ReadGate, ExpireFailsOnlyReadsPastTheirDeadline) {
  ReadGate gate;
  const auto now = ReadGate::Clock::now();
  Result<void> early = catga::Error{Code::unknown, "pending"}, late = early;
  gate.wait(3, now, [&](Result<void> r) { early = std::move(r); });
  gate.wait(3, kFar, [&](Result<void> r) { late = std::move(r); });
  gate.expire(now);
  EXPECT_THAT(early, HasCode(Code::deadline_exceeded));
  EXPECT_THAT(late, HasCode(Code::unknown));
  gate.advance(3);
  EXPECT_THAT(late, IsOk());
}

TEST(ReadGate, CloseFailsWaitingAndLaterReads) {
  ReadGate gate;
  Result<void> waiting = catga::Error{Code::unknown, "pending"}, later = waiting;
  gate.wait(1, kFar, [&](Result<void> r) { waiting = std::move(r); });
  gate.close(catga::Error{Code::unavailable, "node stopped"});
  EXPECT_FALSE(gate.wait(0, kFar, [&](Result<void> r) { later = std::move(r); }));
  EXPECT_THAT(waiting, HasCode(Code::unavailable));
  EXPECT_THAT(later, HasCode(Code::unavailable));
}

// Waits, advances and expiries from several threads at once: every read
// completes exactly once (run it under the tsan preset for races).
TEST(ReadGate, EveryReadCompletesOnceUnderConcurrentAdvanceAndExpire) {
  ReadGate gate;
  constexpr int kThreads = 4, kReads = 2000;
  std::atomic<int> completed{0};
  std::atomic<bool> stop{false};
  std::thread applier([&] {
    for (std::uint64_t i = 1; !stop; ++i) gate.advance(i);
  });
  std::thread sweeper([&] {
    while (!stop) gate.expire(ReadGate::Clock::now());
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < kThreads; ++t) {
    readers.emplace_back([&, t] {
      for (int i = 0; i < kReads; ++i) {
        const auto deadline = ReadGate::Clock::now() + std::chrono::milliseconds(i % 2 ? 0 : 50);
        gate.wait(static_cast<std::uint64_t>(t * kReads + i), deadline, [&](Result<void>) { ++completed; });
      }
    });
  }
  for (auto& r : readers) r.join();
  stop = true;
  applier.join();
  sweeper.join();
  gate.close(catga::Error{Code::unavailable, "node stopped"});
  EXPECT_EQ(completed, kThreads * kReads);
}

namespace {
// A gate whose woken reads go through `run`, as a node's go to its read
// threads; the tasks are kept, to be counted and run by the test.
struct QueuedGate {
  std::vector<catga::detail::UniqueFunction<void()>> tasks;
  ReadGate gate{[this](catga::detail::UniqueFunction<void()> task) { tasks.push_back(std::move(task)); }};
};

std::vector<ReadGate::Read> reads_into(std::vector<int>& seen, int first, int count) {
  std::vector<ReadGate::Read> reads;
  for (int i = first; i < first + count; ++i) {
    reads.push_back({kFar, [&seen, i](Result<void> r) { seen.push_back(r ? i : -i); }});
  }
  return reads;
}
}  // namespace

// The reads one barrier confirmed wait together; once woken (by an engine
// thread at once, or by the apply that reaches their index) they run as one
// task: one thread runs them in turn, one burst.
TEST(ReadGate, ReadsConfirmedTogetherAreWokenAsOneTask) {
  QueuedGate q;
  std::vector<int> seen;
  q.gate.advance(4);
  q.gate.wait(4, reads_into(seen, 1, 3), /*engine_thread=*/true);
  ASSERT_EQ(q.tasks.size(), 1u);
  EXPECT_TRUE(seen.empty());  // not on the engine thread
  q.tasks[0]();
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));

  // Not applied yet: they wait, with a single read for the same index; the
  // apply wakes all four in one task.
  q.tasks.clear();
  seen.clear();
  q.gate.wait(6, reads_into(seen, 1, 3), /*engine_thread=*/true);
  q.gate.wait(6, kFar, [&](Result<void> r) { seen.push_back(r ? 4 : -4); });
  q.gate.advance(5);
  EXPECT_TRUE(q.tasks.empty());
  q.gate.advance(6);
  ASSERT_EQ(q.tasks.size(), 1u);
  q.tasks[0]();
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4}));

  // A caller's own thread (not an engine thread) runs them at once; a closed
  // gate fails them all.
  q.tasks.clear();
  seen.clear();
  q.gate.wait(6, reads_into(seen, 1, 2));
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  q.gate.close(catga::Error{Code::unavailable, "node stopped"});
  q.gate.wait(6, reads_into(seen, 3, 2), /*engine_thread=*/true);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, -3, -4}));
  EXPECT_TRUE(q.tasks.empty());
}

// A read that wakes a blocked caller (who runs the query itself) completes
// on the waking thread — the apply's or the engine thread's that confirmed
// it — and never goes through `run`; the reads woken with it still do, as
// one task.
TEST(ReadGate, AReadThatWakesItsCallerCompletesOnTheWakingThread) {
  QueuedGate q;
  std::vector<int> seen;
  auto waking = [&seen](int i) {
    return ReadGate::Read{kFar, [&seen, i](Result<void> r) { seen.push_back(r ? i : -i); }, /*wakes_caller=*/true};
  };
  q.gate.wait(3, waking(1));
  q.gate.wait(3, reads_into(seen, 2, 2), /*engine_thread=*/true);
  q.gate.advance(3);
  EXPECT_EQ(seen, (std::vector<int>{1}));
  ASSERT_EQ(q.tasks.size(), 1u);
  q.tasks[0]();
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));

  // Servable at once on an engine thread: at once too.
  q.tasks.clear();
  seen.clear();
  q.gate.wait(3, waking(4), /*engine_thread=*/true);
  EXPECT_EQ(seen, (std::vector<int>{4}));
  EXPECT_TRUE(q.tasks.empty());
}
