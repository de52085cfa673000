#include "cluster/snapshot_write_watch.hpp"

#include <cstring>

#include "cluster/data_dir.hpp"

namespace catga::internal {

namespace {

std::string seconds_since(SnapshotWriteWatch::Clock::time_point since, SnapshotWriteWatch::Clock::time_point now) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - since).count()) + " s";
}

}  // namespace

void SnapshotWriteWatch::started(std::uint64_t index, std::uint64_t bytes, Clock::time_point now) {
  pending_ = true;
  failing_ = false;
  index_ = index;
  bytes_ = bytes;
  since_ = now;
  next_look_ = now + kLibraftRetry;
}

std::optional<SnapshotWriteWatch::Report> SnapshotWriteWatch::check(std::uint64_t snapshot_index,
                                                                     Clock::time_point now, const Disk& disk) {
  if (!pending_) return std::nullopt;
  if (snapshot_index >= index_) {
    pending_ = false;
    if (!failing_) return std::nullopt;
    failing_ = false;
    return Report{false, true,
                  "the snapshot at index " + std::to_string(index_) + " (" + mib(bytes_) + ") is written, " +
                      seconds_since(since_, now) + " after it was started"};
  }
  if (now < next_look_) return std::nullopt;
  next_look_ = now + std::chrono::seconds(1);
  std::string why;
  if (const std::uint64_t free = disk.free_bytes(); free < bytes_) {
    why = "not enough disk space: " + mib(bytes_) + " needed, " + mib(free) + " free";
  } else if (const int err = disk.write_probe(); err != 0) {
    why = std::string("the data directory cannot be written: ") + std::strerror(err);
  } else {
    return std::nullopt;  // slow, not failing
  }
  const bool first = !failing_;
  if (!first && now < next_report_) return std::nullopt;
  failing_ = true;
  next_report_ = now + kRepeat;
  return Report{first, false,
                "cannot write the snapshot at index " + std::to_string(index_) + " (" + why + "; pending for " +
                    seconds_since(since_, now) +
                    "): libraft retries every 5 s and takes no other snapshot meanwhile, so the log keeps growing; "
                    "free space in the data directory"};
}

}  // namespace catga::internal
