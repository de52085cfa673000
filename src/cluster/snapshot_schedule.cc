#include "cluster/snapshot_schedule.hpp"

#include <algorithm>
#include <limits>

namespace catga::internal {
namespace {

// libraft takes its knobs as unsigned; validate() keeps the options in range,
// attached test nodes are not validated.
unsigned to_knob(std::uint64_t n) {
  return static_cast<unsigned>(std::clamp<std::uint64_t>(n, 1, std::numeric_limits<unsigned>::max()));
}

}  // namespace

SnapshotSchedule::SnapshotSchedule(const ClusterOptions& options)
    : threshold_entries_(options.snapshot_threshold),
      trailing_entries_(options.snapshot_trailing),
      threshold_bytes_(options.snapshot_threshold_bytes),
      trailing_bytes_(options.snapshot_trailing_bytes),
      growth_percent_(options.snapshot_growth_percent),
      // A trailing of 0 would make libraft 0.22.1's disk layer treat the
      // snapshot as an installed one (see ClusterOptions::validate()).
      trailing_(to_knob(options.snapshot_trailing)) {}

void SnapshotSchedule::applied(std::size_t bytes) {
  bytes_ += bytes;
  ++entries_;
}

void SnapshotSchedule::request() { requested_ = true; }

void SnapshotSchedule::cancel_request() { requested_ = false; }

unsigned SnapshotSchedule::taken(std::uint64_t entries) {
  const std::uint64_t span = entries > 0 ? entries : entries_;
  const std::uint64_t average = span > 0 ? bytes_ / span : 0;
  const std::uint64_t larger = std::max(average, previous_average_);
  std::uint64_t keep = trailing_entries_;
  if (larger > 0) keep = std::min(keep, trailing_bytes_ / larger);
  trailing_ = to_knob(keep);
  if (bytes_ > 0) previous_average_ = average;
  bytes_ = 0;
  entries_ = 0;
  requested_ = false;
  return trailing_;
}

void SnapshotSchedule::written(std::uint64_t snapshot_bytes) { last_snapshot_bytes_ = snapshot_bytes; }

void SnapshotSchedule::restored(std::uint64_t snapshot_bytes) {
  last_snapshot_bytes_ = snapshot_bytes;
  bytes_ = 0;
  entries_ = 0;
  previous_average_ = 0;
}

bool SnapshotSchedule::grown_enough() const {
  // bytes_ * 100 >= growth * last, without overflow for any realistic size.
  return bytes_ >= last_snapshot_bytes_ / 100 * growth_percent_ + last_snapshot_bytes_ % 100 * growth_percent_ / 100;
}

unsigned SnapshotSchedule::threshold() const {
  if (requested_) return 1;
  // Not grown enough: no snapshot whatever the entry count (libraft's
  // threshold is an entry count; the largest one means "not now").
  if (!grown_enough()) return std::numeric_limits<unsigned>::max();
  if (bytes_ >= threshold_bytes_ || entries_ >= threshold_entries_) return 1;
  return to_knob(threshold_entries_);
}

}  // namespace catga::internal
