// src/cluster/install_decoder.hpp — a snapshot installed from the leader,
// decoded while libraft writes it instead of on the loop thread.
//
// libraft 0.22.1 restores an installed snapshot with fsm->restore, on the loop
// thread. Decoding millions of objects there kept the follower from answering
// heartbeats for longer than an election timeout: the leader declared it
// unreachable, aborted the install and sent the whole snapshot again
// (docs/operations.md, "Snapshot installs"). raft_c.c now hands the bytes to a
// libuv pool thread while they are written (callbacks.restore_prepare); the
// state decoded there waits here until fsm->restore adopts it with a swap.
//
// Threading: put() on the pool thread, take() and dispose() on the loop
// thread; libraft orders them (restore follows the write, which waits for the
// decode), the mutex makes the hand-over visible.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "catga/result.hpp"

namespace catga::internal {

// A snapshot decoded beside the live state (RecordStateMachine::
// prepare_restore), waiting to replace it.
class PreparedRestore {
 public:
  virtual ~PreparedRestore() = default;
  // Loop thread: replaces the live state with the decoded one (a swap, not a
  // decode). Afterwards this object holds the replaced state; destroying it
  // frees that state, which is why InstallDecoder::dispose does that on
  // another thread.
  virtual Result<void> adopt() = 0;
};

class InstallDecoder {
 public:
  // What prepare_restore made of one snapshot: an error (the restore of these
  // bytes fails with it), nullptr (the machine cannot prepare: restore() on
  // the loop thread), or the decoded state.
  using Outcome = Result<std::unique_ptr<PreparedRestore>>;

  InstallDecoder() = default;
  InstallDecoder(const InstallDecoder&) = delete;
  InstallDecoder& operator=(const InstallDecoder&) = delete;
  ~InstallDecoder();  // joins the disposal of a replaced state

  // Pool thread: the outcome for the bytes libraft holds at `data` (`len`).
  void put(const void* data, std::size_t len, Outcome outcome);
  // Loop thread, in fsm->restore: the outcome prepared for exactly these
  // bytes, if any (empty: restore them on the loop thread, as at start).
  // Forgets any other.
  std::optional<Outcome> take(const void* data, std::size_t len);
  // Loop thread: destroys a replaced state on another thread (after the
  // previous one is gone, so at most one is being freed at a time).
  void dispose(std::unique_ptr<PreparedRestore> replaced);

 private:
  struct Prepared {
    const void* data;
    std::size_t len;
    Outcome outcome;
  };
  std::mutex mu_;
  std::optional<Prepared> prepared_;
  std::thread disposer_;
};

}  // namespace catga::internal
