// ReadRunner: the read threads. A thread takes every task queued so far (a
// burst); what a task of the burst defers with at_burst_end() runs once the
// burst's tasks have all run.
#include "cluster/read_runner.hpp"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

using catga::internal::ReadRunner;

TEST(ReadRunner, WhatABurstDefersRunsAfterAllItsTasks) {
  ReadRunner runner(1);
  std::mutex mu;
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    std::lock_guard lock(mu);
    order.push_back(std::move(what));
  };

  // Hold the thread in a first burst, so that the next two tasks are queued
  // together and taken as one burst.
  std::promise<void> started, release;
  runner.post([&, go = release.get_future().share()] {
    started.set_value();
    go.wait();
  });
  started.get_future().wait();

  std::promise<void> all_done;
  runner.post([&] {
    note(runner.in_burst() ? "first, in a burst" : "first, outside");
    ReadRunner::Task deferred = [&] {
      note(runner.in_burst() ? "deferred, in a burst" : "deferred, after the burst");
      all_done.set_value();
    };
    EXPECT_TRUE(runner.at_burst_end(deferred));
  });
  runner.post([&] { note("second"); });
  release.set_value();
  all_done.get_future().wait();

  EXPECT_EQ(order, (std::vector<std::string>{"first, in a burst", "second", "deferred, after the burst"}));
}

TEST(ReadRunner, OutsideItsBurstsNothingIsDeferred) {
  ReadRunner runner(1), other(1);
  ReadRunner::Task task = [] {};
  EXPECT_FALSE(runner.in_burst());
  EXPECT_FALSE(runner.at_burst_end(task));
  EXPECT_TRUE(static_cast<bool>(task));  // left to the caller

  // Inside a burst of another runner: not this runner's burst.
  std::promise<std::pair<bool, bool>> seen;
  other.post([&] {
    ReadRunner::Task t = [] {};
    const bool deferred = runner.at_burst_end(t);
    seen.set_value({runner.in_burst(), deferred});
  });
  EXPECT_EQ(seen.get_future().get(), std::make_pair(false, false));
}

TEST(ReadRunner, TheDestructorRunsWhatIsQueuedAndWhatItDefers) {
  std::vector<int> ran;
  {
    ReadRunner runner(1);
    std::promise<void> started, release;
    runner.post([&, go = release.get_future().share()] {
      started.set_value();
      go.wait();
    });
    started.get_future().wait();
    runner.post([&] {
      ReadRunner::Task deferred = [&] { ran.push_back(2); };
      runner.at_burst_end(deferred);
      ran.push_back(1);
    });
    release.set_value();
  }  // joins: the queued task and what it deferred have run
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
}
