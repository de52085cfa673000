#include "cluster/snapshot_child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <system_error>

#include "catga/detail/snapshot_sink.hpp"
#include "cluster/entry_format.hpp"
#include "cluster/raft_node.hpp"

namespace catga::internal {
namespace {

// What the child writes on the pipe before it exits (one write < PIPE_BUF).
struct Report {
  std::uint64_t ok = 0;
  std::uint64_t bytes = 0;
  std::uint64_t encode_us = 0;
  char message[232] = {};
};
static_assert(sizeof(Report) <= PIPE_BUF && sizeof(Report) == 256);

// Sequential writes into the memfd; patches with pwrite.
class FdSink final : public detail::SnapshotSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}

 protected:
  void emit(const char* data, std::size_t size) override {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::system_error(errno, std::generic_category(), "writing the snapshot to memory");
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  }
  void patch_emitted(std::uint64_t position, const char* data, std::size_t size) override {
    pwrite_all(fd_, position, data, size);
  }

 public:
  static void pwrite_all(int fd, std::uint64_t position, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(position));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::system_error(errno, std::generic_category(), "writing the snapshot to memory");
      data += n;
      position += static_cast<std::uint64_t>(n);
      size -= static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
};

void close_all_but(int a, int b) {
  const unsigned lo = static_cast<unsigned>(a < b ? a : b);
  const unsigned hi = static_cast<unsigned>(a < b ? b : a);
  // Descriptors 0-2 stay; the rest (sockets, the log's files, epoll) are the
  // parent's: holding them would delay the parent's closes (no FIN until the
  // child exits). Closing them here does not affect the parent.
  if (lo > 3) ::close_range(3, lo - 1, 0);
  if (hi > lo + 1) ::close_range(lo + 1, hi - 1, 0);
  ::close_range(hi + 1, ~0U, 0);
}

[[noreturn]] void run_child(RecordStateMachine& machine, int memfd, int pipe_write, pid_t parent) {
  // Die with the parent (the check closes the race with a parent that died
  // before the prctl).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  close_all_but(memfd, pipe_write);
  // The encode is background work: the node's own threads (and, on a shared
  // machine, the other members) come first for the CPU.
  ::setpriority(PRIO_PROCESS, 0, 19);
  Report report;
  const auto started = std::chrono::steady_clock::now();
  try {
    FdSink sink(memfd);
    sink.reserve(kSnapshotHeaderBytes);
    machine.write_snapshot(sink);
    sink.flush();
    const std::uint64_t total = sink.position();
    // The header's CRC covers the body: read it back through a mapping
    // (the pages are already in memory; nothing is copied).
    void* map = ::mmap(nullptr, total, PROT_READ, MAP_SHARED, memfd, 0);
    if (map == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mapping the snapshot");
    char header[kSnapshotHeaderBytes];
    write_snapshot_header(header, std::string_view(static_cast<const char*>(map) + kSnapshotHeaderBytes,
                                                   total - kSnapshotHeaderBytes));
    ::munmap(map, total);
    FdSink::pwrite_all(memfd, 0, header, sizeof header);
    report.ok = 1;
    report.bytes = total;
  } catch (const std::exception& e) {
    std::strncpy(report.message, e.what(), sizeof report.message - 1);
  } catch (...) {
    std::strncpy(report.message, "the state machine threw", sizeof report.message - 1);
  }
  report.encode_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count());
  while (::write(pipe_write, &report, sizeof report) < 0 && errno == EINTR) {
  }
  ::_exit(report.ok ? 0 : 1);
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

Result<std::unique_ptr<SnapshotChild>> SnapshotChild::start(RecordStateMachine& machine) {
  const int memfd = ::memfd_create("catga-snapshot", MFD_CLOEXEC);
  if (memfd < 0) return Error(Code::unavailable, errno_text("memfd_create"));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    const Error e(Code::unavailable, errno_text("pipe2"));
    ::close(memfd);
    return e;
  }
  const pid_t parent = ::getpid();
  const auto before = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) run_child(machine, memfd, fds[1], parent);
  const auto fork_time = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - before);
  if (pid < 0) {
    const Error e(Code::unavailable, errno_text("fork"));
    ::close(memfd);
    ::close(fds[0]);
    ::close(fds[1]);
    return e;
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  return std::unique_ptr<SnapshotChild>(new SnapshotChild(pid, memfd, fds[0], fork_time));
}

SnapshotChild::~SnapshotChild() {
  cancel();
  if (memfd_ >= 0) ::close(memfd_);
  if (pipe_read_ >= 0) ::close(pipe_read_);
}

std::optional<Result<SnapshotChild::Written>> SnapshotChild::poll() {
  // The report first, then end of file once the child's descriptors closed:
  // by then its memory is gone, so reaping it does not wait.
  for (;;) {
    char* into = reinterpret_cast<char*>(&report_) + report_bytes_;
    const std::size_t room = sizeof(Report) - report_bytes_;
    char scratch[64];
    const ssize_t n = room > 0 ? ::read(pipe_read_, into, room) : ::read(pipe_read_, scratch, sizeof scratch);
    if (n > 0) {
      if (room > 0) report_bytes_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;  // EAGAIN: not finished yet
    break;                           // end of file
  }
  int status = 0;
  pid_t reaped;
  do {
    reaped = ::waitpid(pid_, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  pid_ = -1;
  const auto& report = *reinterpret_cast<const Report*>(&report_);
  std::string why;
  if (report_bytes_ == sizeof(Report) && report.ok == 1) {
    const int memfd = memfd_;
    memfd_ = -1;
    return Result<Written>(Written{memfd, report.bytes, std::chrono::microseconds(report.encode_us)});
  }
  if (report_bytes_ == sizeof(Report)) {
    why = std::string(report.message, strnlen(report.message, sizeof report.message));
  } else if (reaped > 0 && WIFSIGNALED(status)) {
    why = std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) +
          ")";
  } else {
    why = "exited without a report";
  }
  return Result<Written>(Error(Code::internal, "snapshot child: " + why));
}

std::string SnapshotChild::huge_page_advice(std::chrono::microseconds fork_time, std::string_view thp_mode,
                                            std::string_view glibc_tunables) {
  if (fork_time < std::chrono::milliseconds(5)) return {};
  std::string out = "the snapshot's fork took " + std::to_string(fork_time.count() / 1000) +
                    " ms (the copy of the page tables) and grows with the state; ";
  if (thp_mode.find("[never]") != std::string_view::npos || thp_mode.empty()) {
    return out + "transparent huge pages are off on this machine (/sys/kernel/mm/transparent_hugepage/enabled): "
                 "with them the fork copies ~512 times fewer entries (docs/operations.md, \"Snapshots\")";
  }
  if (glibc_tunables.find("glibc.malloc.hugetlb=1") != std::string_view::npos &&
      glibc_tunables.find("glibc.malloc.arena_max=1") != std::string_view::npos) {
    return {};  // already asked for: nothing more to advise
  }
  return out + "with GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1 in the node's environment "
               "malloc asks for transparent huge pages and the fork copies ~512 times fewer entries, at some cost "
               "in tail latency (docs/operations.md, \"Snapshots\")";
}

std::string SnapshotChild::huge_page_advice(std::chrono::microseconds fork_time) {
  if (fork_time < std::chrono::milliseconds(5)) return {};
  std::string mode;
  if (std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re")) {
    char line[128] = {};
    if (std::fgets(line, sizeof line, f) != nullptr) mode = line;
    std::fclose(f);
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  return huge_page_advice(fork_time, mode, tunables != nullptr ? tunables : "");
}

void SnapshotChild::cancel() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace catga::internal
