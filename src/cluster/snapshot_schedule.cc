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
      trailing_(to_knob(options.snapshot_trailing)) {
  for (const auto& m : options.members) ids_.push_back(m.id);
  std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
  rank_ = static_cast<std::uint64_t>(std::find(ids_.begin(), ids_.end(), options.node_id) - ids_.begin());
  // Before the first snapshot every member is at the same point (index 0).
  lead_ = members() - rank_ % members();
}

std::uint64_t SnapshotSchedule::scaled(std::uint64_t n) const {
  const std::uint64_t m = members();
  if (lead_ >= m) return n;
  // n * lead / m without overflow for any realistic size; at least 1.
  return std::max<std::uint64_t>(1, n / m * lead_ + n % m * lead_ / m);
}

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
  lead_ = members();
  return trailing_;
}

void SnapshotSchedule::written(std::uint64_t snapshot_bytes) { last_snapshot_bytes_ = snapshot_bytes; }

void SnapshotSchedule::restored(std::uint64_t snapshot_bytes, std::uint64_t leader_id) {
  last_snapshot_bytes_ = snapshot_bytes;
  bytes_ = 0;
  entries_ = 0;
  previous_average_ = 0;
  const std::uint64_t m = members();
  lead_ = m;
  const auto leader = std::find(ids_.begin(), ids_.end(), leader_id);
  if (leader_id == 0 || m == 1 || leader == ids_.end()) return;  // own snapshot: keep this node's points
  // The follower now shares the leader's snapshot point: move to its own rank's.
  const auto leader_rank = static_cast<std::uint64_t>(leader - ids_.begin());
  lead_ = m - (rank_ + m - leader_rank) % m;
}

bool SnapshotSchedule::grown_enough() const {
  // bytes_ * 100 >= growth * last, without overflow for any realistic size.
  const std::uint64_t growth =
      last_snapshot_bytes_ / 100 * growth_percent_ + last_snapshot_bytes_ % 100 * growth_percent_ / 100;
  return growth == 0 || bytes_ >= scaled(growth);
}

unsigned SnapshotSchedule::threshold() const {
  if (requested_) return 1;
  // Not grown enough: no snapshot whatever the entry count (libraft's
  // threshold is an entry count; the largest one means "not now").
  if (!grown_enough()) return std::numeric_limits<unsigned>::max();
  const std::uint64_t entries = scaled(threshold_entries_);
  if (bytes_ >= scaled(threshold_bytes_) || entries_ >= entries) return 1;
  return to_knob(entries);
}

}  // namespace catga::internal
