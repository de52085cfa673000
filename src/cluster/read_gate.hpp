// ReadGate: reads that wait until this node has applied a log index
// (read_your_writes, and linearizable reads once the leader confirmed an
// index). The Raft node's loop thread reports each new applied index with
// advance(), which wakes every read waiting for it; expire() fails the ones
// whose deadline passed; close() fails the rest when the node goes away.
//
// Threading: every method may be called from any thread (a mutex guards the
// waiters; completions run outside it). A read that is woken — by advance(),
// or by a wait() that an engine thread makes for a read it confirmed — runs
// through the gate's `run` (a node passes its ReadRunner, so no query runs on
// the loop thread or the peer channel's), the reads woken together as one
// task, so that one thread runs them in turn (one burst: ReadRunner). A read
// that wakes a blocked caller (Read::wakes_caller: the caller runs its query
// itself) and a read servable when its caller asks complete on the calling
// thread; so do failures (expire(), close()). It does not depend on the loop
// running, so a node that stopped itself cannot make two threads touch the
// waiters at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "catga/detail/unique_function.hpp"
#include "catga/result.hpp"

namespace catga::internal {

class ReadGate {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = detail::UniqueFunction<void(Result<void>)>;
  // Runs a woken read's completion (empty: on the waking thread).
  using Run = detail::UniqueFunction<void(detail::UniqueFunction<void()>)>;

  struct Read {
    Clock::time_point deadline;
    Done done;
    // `done` only wakes a caller blocked on the read, who then runs the
    // query on its own thread: it runs on the waking thread, never on `run`.
    bool wakes_caller = false;
  };

  explicit ReadGate(Run run = {}) : run_(std::move(run)) {}

  // Completes `done` once the applied index reaches `index` (at once if it
  // has), with deadline_exceeded from expire() once `deadline` passed, or
  // with close()'s error. `engine_thread`: the caller is a thread of the
  // engine (the loop, the peer channel), so even a read servable at once
  // goes through `run`. True when the read waits (the index is not applied
  // yet); false when it completed, or went to `run`, before returning.
  bool wait(std::uint64_t index, Read read, bool engine_thread = false);
  bool wait(std::uint64_t index, Clock::time_point deadline, Done done, bool engine_thread = false) {
    return wait(index, Read{deadline, std::move(done)}, engine_thread);
  }
  // The same for reads that wait for one index together (the reads one
  // barrier confirmed): woken together, their completions run in one go.
  bool wait(std::uint64_t index, std::vector<Read> reads, bool engine_thread = false);
  // The applied index is now `applied` (never moves back).
  void advance(std::uint64_t applied);
  // Fails every read whose deadline is at or before `now`.
  void expire(Clock::time_point now);
  // Fails every waiting read and every later one with `why`.
  void close(const Error& why);

 private:
  bool wait_all(std::uint64_t index, std::span<Read> reads, bool engine_thread);
  void wake(std::span<Read> woken);

  std::mutex mu_;
  std::uint64_t applied_ = 0;
  bool closed_ = false;
  Error closed_why_{Code::unavailable, "node stopped"};
  std::multimap<std::uint64_t, Read> waiters_;
  Run run_;
};

}  // namespace catga::internal
