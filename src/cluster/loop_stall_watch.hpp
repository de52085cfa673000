// src/cluster/loop_stall_watch.hpp — notices when a node's loop thread stops
// turning, and says what it was doing.
//
// Everything a node does for Raft runs on its loop thread (libuv): a loop that
// does not turn for about an election timeout sends no heartbeats and answers
// nothing, and the other members elect someone else. The watch is a thread of
// its own that pings the loop every `period` (through the node's ordinary
// wake-up) and times the answer (turned(), called by the loop whenever it
// drains its inbound queue). While an answer is late by `report_after` or more
// the watch reads the loop thread's state from /proc/self/task/TID (state,
// kernel wait channel, system call) at every period; when the answer comes the
// loop thread reports the stall through `report`: how long, and the states
// seen (e.g. "running 7, disk wait 2 in io_destroy").
//
// A loop idle in epoll answers a ping at once: only a loop that is busy, blocked
// in a system call, faulting, or not given a core is late.
//
// Threading: the constructor starts the watch thread, the destructor stops and
// joins it; turned() runs on the loop thread, `ping` and the /proc reads on the
// watch thread, `report` on the loop thread (inside turned()).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace catga::internal {

class LoopStallWatch {
 public:
  using Clock = std::chrono::steady_clock;
  struct Stall {
    Clock::duration length{};
    std::string seen;  // "running 7, disk wait 2 in io_destroy" (empty if never sampled)
  };
  struct Options {
    Clock::duration period = std::chrono::milliseconds(50);
    Clock::duration report_after = std::chrono::milliseconds(200);
  };

  // Watches the thread `loop_tid` (gettid() of the loop thread).
  LoopStallWatch(pid_t loop_tid, Options options, std::function<void()> ping, std::function<void(const Stall&)> report);
  ~LoopStallWatch();
  LoopStallWatch(const LoopStallWatch&) = delete;
  LoopStallWatch& operator=(const LoopStallWatch&) = delete;

  // Loop thread: the loop turned (answers the outstanding ping, if any).
  void turned();

  std::uint64_t stalls() const { return stalls_.load(std::memory_order_relaxed); }
  Clock::duration longest() const { return Clock::duration(longest_.load(std::memory_order_relaxed)); }
  // Readings of the loop thread taken so far (during late answers).
  std::uint64_t readings() const { return readings_.load(std::memory_order_relaxed); }

  // One reading of /proc/self/task/TID: its state letter and wait channel.
  // Exposed for tests.
  struct Reading {
    char state = '?';
    std::string wchan;
  };
  static Reading read_thread(pid_t tid);
  // "running 7, disk wait 2 in io_destroy": the readings of one stall, counted.
  static std::string describe(const std::map<std::string, unsigned>& counts);
  static std::string label(const Reading& r);

 private:
  void run();

  const pid_t tid_;
  const Options options_;
  const std::function<void()> ping_;
  const std::function<void(const Stall&)> report_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> outstanding_{false};  // a ping waits for its answer
  Clock::time_point pinged_at_{};
  std::map<std::string, unsigned> seen_;  // readings during the current late answer

  std::atomic<std::uint64_t> stalls_{0};
  std::atomic<std::uint64_t> readings_{0};
  std::atomic<Clock::rep> longest_{0};
  std::thread thread_;
};

}  // namespace catga::internal
