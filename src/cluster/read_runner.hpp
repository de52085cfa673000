// ReadRunner: the threads on which the engine's threads hand off the reads
// they wake. A read_your_writes or linearizable query becomes servable on the
// Raft loop thread (an apply reached its index, or a barrier confirmed the
// leadership) or on the peer channel's thread (the leader's read index came
// back). Running the query there would hold up heartbeats and applies, or
// forwarding, for as long as the query takes; so the query runs here instead.
// A read already servable when its caller asks, and any read of a blocking
// call (woken, its caller runs the query itself), run on the caller's thread
// and never come here: the runner serves callback-style calls.
//
// Threading: post() from any thread. Tasks run in the order posted; a thread
// that wakes takes every task queued so far and runs them in turn (one
// wake-up per burst of reads; the bursts of different wake-ups may run on
// the `threads` threads at once). The destructor runs what is still queued
// (each task is a read's completion: a caller may wait for it), then joins.
//
// A burst's tasks often start the next read (a closed-loop caller sends its
// next query from the previous one's completion). at_burst_end() lets such a
// read hold back its request to the engine until every task of the burst has
// run, so the reads one burst starts reach the loop together and share one
// barrier — as they did when they ran inline on the loop thread — instead of
// trickling in while the burst runs, each wake-up of the loop issuing a
// barrier (a log entry) of its own.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "catga/detail/unique_function.hpp"

namespace catga::internal {

class ReadRunner {
 public:
  using Task = detail::UniqueFunction<void()>;

  explicit ReadRunner(unsigned threads = 2);
  ~ReadRunner();
  ReadRunner(const ReadRunner&) = delete;
  ReadRunner& operator=(const ReadRunner&) = delete;

  void post(Task task);

  // On a thread of this runner, inside a burst: queues `task` to run once the
  // burst's tasks have all run (before the thread takes the next burst) and
  // returns true. Anywhere else: returns false and leaves `task` alone.
  bool at_burst_end(Task& task);
  // Whether the calling thread is one of this runner's, inside a burst.
  bool in_burst() const;

 private:
  struct Burst;
  void run();

  static thread_local Burst* current_burst_;  // the calling thread's burst (null outside one)

  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace catga::internal
