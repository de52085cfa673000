// src/cluster/snapshot_child.hpp — a snapshot encoded by a forked child
// process, so the loop thread pauses for the fork only.
//
// What it does: start() forks. The child sees the whole process frozen at
// that instant (copy-on-write pages, one thread: the one that forked), closes
// every inherited descriptor but two, encodes the state machine through
// RecordStateMachine::write_snapshot into an anonymous memory file (memfd)
// behind a Catga snapshot header (length, CRC-32), reports on a pipe and
// leaves with _exit. Meanwhile the parent goes on applying entries; the pipe
// becomes readable when the child is done (or died), and poll() collects the
// result: the memory file and its length, which libraft then writes.
//
// What the child may do, and so what write_snapshot may do there: compute and
// allocate (glibc's malloc is reset for the child), write to the memfd. It
// must not lock a mutex another thread might have held at the fork, log, or
// use threads, sockets or other descriptors. Catga's own encoders and
// msgpack-c's `pack` of the user's state obey that.
//
// Threading: start(), poll() and cancel() run on the loop thread.
// Ownership: the object owns the child (killed and reaped by cancel() or the
// destructor), the pipe and, until poll() hands it over, the memfd.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "catga/result.hpp"

namespace catga::internal {

class RecordStateMachine;

class SnapshotChild {
 public:
  struct Written {
    int memfd;            // the caller owns it: header + body, `bytes` long
    std::uint64_t bytes;  // whole snapshot, header included
    std::chrono::microseconds encode_time;  // measured in the child
  };

  // Forks a child that encodes `machine`. Errors (nothing forked):
  // unavailable (fork, memfd or pipe failed: e.g. EAGAIN / ENOMEM).
  static Result<std::unique_ptr<SnapshotChild>> start(RecordStateMachine& machine);

  ~SnapshotChild();
  SnapshotChild(const SnapshotChild&) = delete;
  SnapshotChild& operator=(const SnapshotChild&) = delete;

  // Readable (poll/uv_poll) once the child finished or died.
  int notify_fd() const { return pipe_read_; }
  pid_t pid() const { return pid_; }

  // Whenever notify_fd() is readable: empty while the child still runs;
  // otherwise the child has been reaped and this is what it wrote. Errors:
  // internal ("snapshot child: <why>": the state machine threw, the memory
  // could not be written, the child was killed by a signal, e.g. SIGKILL from
  // the kernel's out-of-memory killer).
  std::optional<Result<Written>> poll();

  // Kills and reaps the child; nothing is written.
  void cancel();

  // How long the fork() itself took: the loop thread's part of the snapshot,
  // about the copy of the process's page tables.
  std::chrono::microseconds fork_time() const { return fork_time_; }

  // What to tell the operator when a fork took `fork_time` (once per process:
  // the caller logs it): empty below 5 ms. Above, the page tables are the
  // cost, and transparent huge pages cut them ~512-fold: the advice says
  // whether this machine has them (`thp_mode`, the contents of
  // /sys/kernel/mm/transparent_hugepage/enabled) and whether glibc's malloc
  // asks for them (`glibc_tunables`, the GLIBC_TUNABLES variable).
  static std::string huge_page_advice(std::chrono::microseconds fork_time, std::string_view thp_mode,
                                      std::string_view glibc_tunables);
  // The same, read off this process and machine.
  static std::string huge_page_advice(std::chrono::microseconds fork_time);

 private:
  SnapshotChild(pid_t pid, int memfd, int pipe_read, std::chrono::microseconds fork_time)
      : pid_(pid), memfd_(memfd), pipe_read_(pipe_read), fork_time_(fork_time) {}

  pid_t pid_;
  int memfd_;
  int pipe_read_;
  std::chrono::microseconds fork_time_;
  alignas(8) unsigned char report_[256] = {};  // the child's report, as read so far
  std::size_t report_bytes_ = 0;
};

}  // namespace catga::internal
