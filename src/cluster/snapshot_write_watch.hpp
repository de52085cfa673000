// src/cluster/snapshot_write_watch.hpp — notices a snapshot of this node's own
// state that libraft cannot write, and says why.
//
// libraft 0.22.1 writes a snapshot by first creating a temporary file of its
// whole size in the data directory (libuv's thread pool, posix_fallocate).
// When that fails — a full disk above all — it tries again every 5 s
// (UV__DISK_RETRY_RATE) and tells nobody: no callback, no error, and no other
// snapshot starts meanwhile, so the log behind the last snapshot grows
// without bound. RaftNode tells the watch when it hands a snapshot to libraft
// and, after each loop pass, how far libraft's snapshot index has come; a
// write that is still not done after one retry period makes the watch ask
// the disk (through `Disk`, which reads the data directory) whether the
// snapshot fits and whether a file can be written at all. If not, that write
// has failed: it is counted once and reported at once, then at most once a
// minute while it lasts, and once more when the write finally succeeds. A
// write that is merely slow (room enough, the probe writes) is not a failure.
//
// Deterministic apart from `Disk`: the clock is passed in. Loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace catga::internal {

class SnapshotWriteWatch {
 public:
  using Clock = std::chrono::steady_clock;
  // libraft 0.22.1 retries a failed snapshot file creation this often.
  static constexpr std::chrono::seconds kLibraftRetry{5};
  // A failing write is reported again at most this often.
  static constexpr std::chrono::seconds kRepeat{60};

  struct Disk {
    std::function<std::uint64_t()> free_bytes;  // free space in the data directory
    std::function<int()> write_probe;           // 0, or why a small file cannot be written (errno)
  };
  struct Report {
    bool failed_now = false;  // the write was just found failing: count it
    bool recovered = false;   // a write that had failed is written now
    std::string message;      // one line for the log
  };

  // libraft was handed the snapshot at `index`, `bytes` long.
  void started(std::uint64_t index, std::uint64_t bytes, Clock::time_point now);
  // libraft's snapshot index is `snapshot_index` now: something to log, if
  // anything. Asks `disk` at most once a second, and only about a write that
  // has been pending for kLibraftRetry.
  std::optional<Report> check(std::uint64_t snapshot_index, Clock::time_point now, const Disk& disk);
  bool pending() const { return pending_; }

 private:
  bool pending_ = false;
  bool failing_ = false;
  std::uint64_t index_ = 0;
  std::uint64_t bytes_ = 0;
  Clock::time_point since_{};
  Clock::time_point next_look_{};
  Clock::time_point next_report_{};
};

}  // namespace catga::internal
