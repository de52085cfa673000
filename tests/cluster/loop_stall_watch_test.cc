// LoopStallWatch: a loop thread that does not answer is reported with what it
// was seen doing; the /proc readings are labelled and counted.
#include "cluster/loop_stall_watch.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace catga::internal {
namespace {

using namespace std::chrono_literals;

TEST(LoopStallWatch, LabelsAndCountsReadings) {
  EXPECT_EQ(LoopStallWatch::label({'D', "io_destroy"}), "disk wait in io_destroy");
  EXPECT_EQ(LoopStallWatch::label({'S', "do_epoll_wait"}), "sleeping in do_epoll_wait");
  EXPECT_EQ(LoopStallWatch::label({'R', ""}), "running");
  EXPECT_EQ(LoopStallWatch::label({'R', "ignored while running"}), "running");
  EXPECT_EQ(LoopStallWatch::describe({{"running", 7}, {"disk wait in io_destroy", 2}}),
            "disk wait in io_destroy 2, running 7");
  EXPECT_EQ(LoopStallWatch::describe({}), "");
}

TEST(LoopStallWatch, ReadsThisThreadRunning) {
  const auto r = LoopStallWatch::read_thread(static_cast<pid_t>(::gettid()));
  EXPECT_EQ(r.state, 'R');  // it is reading /proc right now
}

// A "loop" that answers each ping at once, except one: it blocks reading an
// empty pipe until the watch has looked at it three times. The stall is
// reported once the loop answers, with the state it was seen in.
TEST(LoopStallWatch, ReportsALoopBlockedUntilAnswered) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::mutex mu;
  std::condition_variable cv;
  bool pinged = false, done = false, block_next = true;
  std::vector<LoopStallWatch::Stall> reports;
  pid_t loop_tid = 0;
  LoopStallWatch* watch = nullptr;

  std::thread loop([&] {
    {
      std::lock_guard lock(mu);
      loop_tid = static_cast<pid_t>(::gettid());
    }
    cv.notify_all();
    std::unique_lock lock(mu);
    while (!done) {
      cv.wait(lock, [&] { return pinged || done; });
      if (done) break;
      pinged = false;
      if (block_next) {
        block_next = false;
        lock.unlock();
        char c;
        ASSERT_EQ(::read(fds[0], &c, 1), 1);  // blocked until the test writes
        lock.lock();
      }
      if (watch != nullptr) {
        lock.unlock();
        watch->turned();
        lock.lock();
      }
    }
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return loop_tid != 0; });
  }
  LoopStallWatch::Options o;
  o.period = 5ms;
  o.report_after = 20ms;
  {
    LoopStallWatch w(
        loop_tid, o,
        [&] {
          {
            std::lock_guard lock(mu);
            pinged = true;
          }
          cv.notify_all();
        },
        [&](const LoopStallWatch::Stall& s) {
          std::lock_guard lock(mu);
          reports.push_back(s);
        });
    {
      std::lock_guard lock(mu);
      watch = &w;
    }
    // Bounded: 30 s at most for three readings of the blocked loop.
    for (int i = 0; i < 3000 && w.readings() < 3; ++i) std::this_thread::sleep_for(10ms);
    ASSERT_GE(w.readings(), 3u);
    ASSERT_EQ(::write(fds[1], "x", 1), 1);
    for (int i = 0; i < 3000 && w.stalls() == 0; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_GE(w.stalls(), 1u);
    EXPECT_GE(w.longest(), o.report_after);
    {
      std::lock_guard lock(mu);
      done = true;
      watch = nullptr;
    }
    cv.notify_all();
    loop.join();
  }
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_FALSE(reports.empty());
  bool blocked_seen = false;
  for (const auto& r : reports) {
    if (r.seen.find("sleeping") != std::string::npos) blocked_seen = true;
  }
  EXPECT_TRUE(blocked_seen) << reports.front().seen;
}

}  // namespace
}  // namespace catga::internal
