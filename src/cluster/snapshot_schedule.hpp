// src/cluster/snapshot_schedule.hpp — when a RaftNode makes libraft take a
// snapshot, and how many entries libraft keeps behind it.
//
// libraft 0.22.1 knows entries only: after an apply pass it snapshots once
// `commit_index - last snapshot index >= threshold`, and a snapshot keeps
// `trailing` entries. It has no "snapshot now" call and no byte bounds. The
// schedule turns ClusterOptions' byte bounds and take_snapshot() requests into
// those two knobs:
//   - threshold(): 1 ("at the next check") once a snapshot was requested;
//     otherwise, while the entries applied since the last snapshot are fewer
//     bytes than snapshot_growth_percent of that snapshot's size, the largest
//     count (never); after that 1 once snapshot_threshold_bytes or
//     snapshot_threshold entries were applied, else snapshot_threshold;
//   - taken(): a snapshot is being taken now: the trailing entries it should
//     keep — snapshot_trailing_bytes divided by the average entry size
//     (1 … snapshot_trailing) — and a fresh count.
// The average is the larger of the span since the previous snapshot and the
// span before it: the entries kept reach back into the older span when the
// newer one is short (a requested snapshot right after large entries).
//
// Staggered: every member applies the same entries under the same schedule,
// so left alone they would all snapshot at the same index and write the whole
// state to disk at once. Each member therefore takes one snapshot *early* —
// at a fraction of every threshold (entries, bytes and growth alike, so
// whichever binds) — and then follows the schedule above, which keeps the
// spacing: the members' snapshot points stay apart by that fraction of the
// interval (exactly while a fixed threshold binds; while the growth
// threshold binds and the state grows with the log, the interval grows by
// the same factor for everyone, so the spacing does too). The early snapshot
// of a member of rank r (0-based, in the order of the ids in `members`, n
// members) comes at (n - r) / n of the thresholds:
//   - before its first snapshot (a new member, a new cluster): rank 0 at the
//     full thresholds, the others earlier, one n-th apart;
//   - after a snapshot installed from the leader (whose points the follower
//     now shares): at (n - k) / n, k = (r - leader's rank) mod n, which puts
//     it where its rank belongs relative to the leader.
// A snapshot loaded from the node's own disk at start keeps the node's own
// points (no early snapshot). Staggering only ever takes a snapshot earlier,
// never later, so the byte bounds on disk hold as before; the cost is at most
// one extra snapshot per start or install. A member alone, or missing from
// `members` (attached test nodes), does not stagger; requested snapshots do
// not wait and end any early one pending.
//
// Pure and deterministic: no libraft, no clock. RaftNode owns one, feeds it
// from its FSM callbacks on the loop thread and copies the knobs into libraft.
// Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "catga/cluster.hpp"

namespace catga::internal {

class SnapshotSchedule {
 public:
  explicit SnapshotSchedule(const ClusterOptions& options);

  // A log entry of `bytes` was applied (replays after a restart included).
  void applied(std::size_t bytes);
  // take_snapshot(): snapshot at libraft's next check, whatever was applied.
  void request();
  // The request could not be served (e.g. its barrier failed).
  void cancel_request();
  // libraft is taking a snapshot of everything applied so far. `entries`:
  // log entries since the previous snapshot (commands, barriers and
  // configuration changes alike; 0 if unknown: the applied entries are
  // counted then). Returns the trailing entries this snapshot keeps; the
  // count starts again and any request is served.
  unsigned taken(std::uint64_t entries);
  // The snapshot taken last is `snapshot_bytes` long (known once written).
  void written(std::uint64_t snapshot_bytes);
  // A snapshot of `snapshot_bytes` replaced the state: loaded at start from
  // this node's disk (`leader_id` 0), or installed from the leader
  // `leader_id`. Nothing has been applied since.
  void restored(std::uint64_t snapshot_bytes, std::uint64_t leader_id = 0);

  // The snapshot threshold libraft should use now (entries; 1 = next check).
  unsigned threshold() const;
  // The trailing libraft uses until the next taken().
  unsigned trailing() const { return trailing_; }
  std::uint64_t bytes_since_snapshot() const { return bytes_; }
  std::uint64_t last_snapshot_bytes() const { return last_snapshot_bytes_; }
  // The staggering: this member's rank among members() (1: none), and the
  // fraction lead() / members() of the thresholds at which the next snapshot
  // is due (members(): the full thresholds).
  std::uint64_t members() const { return ids_.size() > 1 && rank_ < ids_.size() ? ids_.size() : 1; }
  std::uint64_t rank() const { return rank_; }
  std::uint64_t lead() const { return lead_; }

 private:
  bool grown_enough() const;
  // `n` scaled by lead() / members().
  std::uint64_t scaled(std::uint64_t n) const;

  std::uint64_t threshold_entries_;
  std::uint64_t trailing_entries_;
  std::uint64_t threshold_bytes_;
  std::uint64_t trailing_bytes_;
  std::uint64_t growth_percent_;
  std::uint64_t last_snapshot_bytes_ = 0;  // 0: none yet, no growth condition
  std::uint64_t bytes_ = 0;             // entry bytes applied since the last snapshot
  std::uint64_t entries_ = 0;           // entries applied since the last snapshot
  std::uint64_t previous_average_ = 0;  // bytes per entry of the span before
  bool requested_ = false;
  unsigned trailing_;
  std::vector<std::uint64_t> ids_;  // the members' ids, sorted
  std::uint64_t rank_ = 0;          // this node's position in ids_ (ids_.size(): absent)
  std::uint64_t lead_ = 1;          // of members(): the fraction of the thresholds due now
};

}  // namespace catga::internal
