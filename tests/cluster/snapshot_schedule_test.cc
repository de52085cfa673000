// SnapshotSchedule: the byte bounds turned into libraft's entry knobs.
#include "cluster/snapshot_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace catga::internal {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;

ClusterOptions options(std::uint64_t threshold_bytes = 4 * kMiB, std::uint64_t trailing_bytes = kMiB) {
  ClusterOptions o;
  o.snapshot_threshold = 1000;
  o.snapshot_trailing = 200;
  o.snapshot_threshold_bytes = threshold_bytes;
  o.snapshot_trailing_bytes = trailing_bytes;
  return o;
}

TEST(SnapshotSchedule, KeepsTheEntryThresholdBelowTheByteThreshold) {
  SnapshotSchedule s(options());
  EXPECT_EQ(s.threshold(), 1000u);
  EXPECT_EQ(s.trailing(), 200u);
  for (int i = 0; i < 3; ++i) s.applied(kMiB);
  EXPECT_EQ(s.bytes_since_snapshot(), 3 * kMiB);
  EXPECT_EQ(s.threshold(), 1000u);
}

TEST(SnapshotSchedule, ByteThresholdAsksForASnapshotAtTheNextCheck) {
  SnapshotSchedule s(options());
  for (int i = 0; i < 4; ++i) s.applied(kMiB);
  EXPECT_EQ(s.threshold(), 1u);
  s.taken(4);
  EXPECT_EQ(s.bytes_since_snapshot(), 0u);
  EXPECT_EQ(s.threshold(), 1000u) << "the configured threshold is back once the snapshot started";
}

TEST(SnapshotSchedule, TrailingKeepsAboutTheTrailingBytes) {
  SnapshotSchedule s(options(4 * kMiB, kMiB));
  for (int i = 0; i < 16; ++i) s.applied(256 * 1024);  // 16 entries of 256 KiB
  EXPECT_EQ(s.taken(16), 4u) << "1 MiB at 256 KiB per entry";
}

TEST(SnapshotSchedule, TrailingIsAtMostSnapshotTrailing) {
  SnapshotSchedule s(options());
  for (int i = 0; i < 1000; ++i) s.applied(64);  // small entries: the entry bound wins
  EXPECT_EQ(s.taken(1000), 200u);
}

TEST(SnapshotSchedule, TrailingIsAtLeastOne) {
  SnapshotSchedule s(options(4 * kMiB, 0));
  for (int i = 0; i < 4; ++i) s.applied(kMiB);
  EXPECT_EQ(s.taken(4), 1u) << "0 would make libraft 0.22.1 take the snapshot for an installed one";
}

TEST(SnapshotSchedule, AverageCountsEveryLogEntryWhenKnown) {
  SnapshotSchedule s(options(4 * kMiB, kMiB));
  for (int i = 0; i < 4; ++i) s.applied(kMiB);
  // 4 commands of 1 MiB among 12 entries (barriers, configuration changes):
  // 4 MiB / 12 entries averages 341 KiB, so 1 MiB keeps 3 entries.
  EXPECT_EQ(s.taken(12), 3u);
}

TEST(SnapshotSchedule, ShortSpanUsesThePreviousAverage) {
  SnapshotSchedule s(options(4 * kMiB, kMiB));
  for (int i = 0; i < 4; ++i) s.applied(kMiB);
  EXPECT_EQ(s.taken(4), 1u);
  // A requested snapshot covering one barrier: the entries it keeps reach back
  // into the 1 MiB entries, so their average still counts.
  s.request();
  EXPECT_EQ(s.threshold(), 1u);
  EXPECT_EQ(s.taken(1), 1u);
  EXPECT_EQ(s.threshold(), 1000u);
}

TEST(SnapshotSchedule, RequestAndCancel) {
  SnapshotSchedule s(options());
  s.request();
  EXPECT_EQ(s.threshold(), 1u);
  s.cancel_request();
  EXPECT_EQ(s.threshold(), 1000u);
  // Cancelling a request does not hide a reached byte threshold.
  for (int i = 0; i < 4; ++i) s.applied(kMiB);
  s.request();
  s.cancel_request();
  EXPECT_EQ(s.threshold(), 1u);
}

TEST(SnapshotSchedule, RestoredSnapshotStartsTheCountAgain) {
  SnapshotSchedule s(options());
  for (int i = 0; i < 5; ++i) s.applied(kMiB);
  ASSERT_EQ(s.threshold(), 1u);
  s.restored(0);
  EXPECT_EQ(s.bytes_since_snapshot(), 0u);
  EXPECT_EQ(s.threshold(), 1000u);
}

TEST(SnapshotSchedule, UnknownSpanFallsBackToTheAppliedEntries) {
  SnapshotSchedule s(options(4 * kMiB, kMiB));
  for (int i = 0; i < 8; ++i) s.applied(512 * 1024);
  EXPECT_EQ(s.taken(0), 2u);
}

// ---- proportional to the state (snapshot_growth_percent) ---------------------

constexpr unsigned kNever = std::numeric_limits<unsigned>::max();

TEST(SnapshotSchedule, GrowthHoldsTheNextSnapshotBackUntilTheLogReachesThatFractionOfTheLast) {
  ClusterOptions o = options(4 * kMiB, kMiB);
  o.snapshot_growth_percent = 50;
  SnapshotSchedule s(o);
  s.written(100 * kMiB);  // a large state
  for (int i = 0; i < 49; ++i) s.applied(kMiB);
  EXPECT_EQ(s.threshold(), kNever) << "49 MiB of log is less than 50 % of a 100 MiB snapshot";
  s.applied(kMiB);
  EXPECT_EQ(s.threshold(), 1u) << "50 MiB reached, and past the 4 MiB byte threshold";
}

TEST(SnapshotSchedule, GrowthAppliesToTheEntryThresholdToo) {
  SnapshotSchedule s(options());  // 100 % by default
  s.written(1000 * 64);
  for (int i = 0; i < 1500; ++i) s.applied(16);  // past 1000 entries, 24 000 bytes
  EXPECT_EQ(s.threshold(), kNever);
  for (int i = 0; i < 2500; ++i) s.applied(16);  // 64 000 bytes: grown by 100 %
  EXPECT_EQ(s.threshold(), 1u) << "grown enough and past the entry threshold";
}

TEST(SnapshotSchedule, SmallStatesKeepTheConfiguredThresholds) {
  SnapshotSchedule s(options());
  s.written(4096);
  for (int i = 0; i < 10; ++i) s.applied(kMiB / 2);  // 5 MiB: far past 4 KiB and 4 MiB
  EXPECT_EQ(s.threshold(), 1u);
  s.taken(10);
  s.applied(100);
  EXPECT_EQ(s.threshold(), kNever) << "100 bytes are not 100 % of 4 KiB";
  for (int i = 0; i < 40; ++i) s.applied(100);
  EXPECT_EQ(s.threshold(), 1000u) << "grown enough: the entry threshold decides";
}

TEST(SnapshotSchedule, ZeroGrowthIsTheByteAndEntryThresholdsAlone) {
  ClusterOptions o = options();
  o.snapshot_growth_percent = 0;
  SnapshotSchedule s(o);
  s.written(1000 * kMiB);
  EXPECT_EQ(s.threshold(), 1000u);
  for (int i = 0; i < 4; ++i) s.applied(kMiB);
  EXPECT_EQ(s.threshold(), 1u);
}

TEST(SnapshotSchedule, ARestoredSnapshotIsTheBaseOfTheGrowth) {
  SnapshotSchedule s(options());
  s.restored(10 * kMiB);
  for (int i = 0; i < 9; ++i) s.applied(kMiB);
  EXPECT_EQ(s.threshold(), kNever);
  s.applied(kMiB);
  EXPECT_EQ(s.threshold(), 1u);
  EXPECT_EQ(s.last_snapshot_bytes(), 10 * kMiB);
}

TEST(SnapshotSchedule, RequestIgnoresTheGrowth) {
  SnapshotSchedule s(options());
  s.written(100 * kMiB);
  s.request();
  EXPECT_EQ(s.threshold(), 1u);
}


// ---- staggering (members take their snapshots apart) --------------------------

// One member applying the log as libraft drives it: after each entry it takes
// a snapshot when the threshold is 1 or its entries since the last snapshot
// reach the threshold. The state grows by `state_per_entry` bytes per entry,
// so each snapshot is that times its index long.
struct Member {
  SnapshotSchedule schedule;
  std::uint64_t last = 0;  // index of its last snapshot
  std::vector<std::uint64_t> taken;
  int late = 0;  // times it held more log than the schedule allows

  void apply(std::uint64_t index, std::uint64_t entry_bytes, std::uint64_t state_per_entry, std::uint64_t growth) {
    schedule.applied(entry_bytes);
    // The bound without staggering: the byte threshold (4 MiB) or the growth
    // of the last snapshot, whichever is larger, plus the entry that crossed
    // it; and the entry threshold where growth does not bind.
    const std::uint64_t bytes_bound = std::max(4 * kMiB, schedule.last_snapshot_bytes() * growth / 100) + entry_bytes;
    if (schedule.bytes_since_snapshot() > bytes_bound) ++late;
    if (growth == 0 && index - last > 1000) ++late;
    const unsigned t = schedule.threshold();
    if (t == 1 || index - last >= t) {
      schedule.taken(index - last);
      schedule.written(index * state_per_entry + 1);
      last = index;
      taken.push_back(index);
    }
  }
};

struct Regime {
  const char* name;
  std::uint64_t entry_bytes;
  std::uint64_t state_per_entry;  // 0: the state does not grow
  std::uint64_t growth_percent;
  std::uint64_t entries;          // how many the run applies
};

// Entries bind (small entries), bytes bind (256 KiB entries reach 4 MiB
// after 16), growth binds (the state grows with the log: 60 % of each entry).
const Regime kRegimes[] = {
    {"entries bind", 64, 0, 0, 20000},
    {"bytes bind", 256 * 1024, 0, 0, 2000},
    {"growth binds", 4096, 2458, 100, 400000},
};

ClusterOptions member_options(std::uint64_t id, const Regime& r, bool staggered = true) {
  ClusterOptions o = options(4 * kMiB, kMiB);
  o.node_id = id;
  if (staggered) o.members = {{.id = 30}, {.id = 10}, {.id = 20}};  // ranks by id, not by position
  o.snapshot_growth_percent = r.growth_percent;
  return o;
}

std::vector<Member> run_members(const Regime& r, bool staggered, std::uint64_t install_at = 0) {
  std::vector<Member> m;
  for (std::uint64_t id : {10, 20, 30}) m.push_back({SnapshotSchedule(member_options(id, r, staggered))});
  for (std::uint64_t index = 1; index <= r.entries; ++index) {
    for (auto& x : m) x.apply(index, r.entry_bytes, r.state_per_entry, r.growth_percent);
    if (index == install_at) {
      // Member 30 (rank 2) fell behind and installs the snapshot of member
      // 10 (rank 0, the leader), then applies what followed it.
      Member& f = m[2];
      f.schedule.restored(m[0].last * r.state_per_entry + 1, 10);
      f.last = m[0].last;
      f.taken.erase(std::remove_if(f.taken.begin(), f.taken.end(), [&](auto i) { return i > f.last; }), f.taken.end());
      for (std::uint64_t i = m[0].last + 1; i <= index; ++i) f.apply(i, r.entry_bytes, r.state_per_entry, r.growth_percent);
    }
  }
  return m;
}

// The smallest distance between a snapshot of one member and any of
// another's, as a fraction of the snapshot's own interval, after `from`.
double closest(const std::vector<Member>& m, std::uint64_t from) {
  double worst = 1.0;
  for (std::size_t a = 0; a < m.size(); ++a) {
    for (std::size_t k = 1; k < m[a].taken.size(); ++k) {
      const std::uint64_t at = m[a].taken[k];
      if (at <= from) continue;
      const double interval = static_cast<double>(at - m[a].taken[k - 1]);
      for (std::size_t b = 0; b < m.size(); ++b) {
        if (b == a) continue;
        for (auto other : m[b].taken) {
          const double d = static_cast<double>(at > other ? at - other : other - at);
          worst = std::min(worst, d / interval);
        }
      }
    }
  }
  return worst;
}

TEST(SnapshotSchedule, MembersSnapshotApartWhicheverThresholdBinds) {
  for (const Regime& r : kRegimes) {
    const auto plain = run_members(r, false);
    ASSERT_GE(plain[0].taken.size(), 5u) << r.name;
    EXPECT_EQ(closest(plain, 0), 0.0) << r.name << ": without staggering all members snapshot at the same index";
    const auto m = run_members(r, true);
    EXPECT_GE(closest(m, 0), 0.25) << r.name << ": two members' snapshots closer than a quarter of an interval";
    for (std::size_t a = 0; a < m.size(); ++a) {
      // Never later than without staggering: the log on disk stays within
      // the same bounds, and at most one snapshot more is taken.
      EXPECT_EQ(plain[a].late, 0) << r.name << ", member " << a;
      EXPECT_EQ(m[a].late, 0) << r.name << ", member " << a;
      EXPECT_GE(m[a].taken.size(), plain[a].taken.size()) << r.name << ", member " << a;
      EXPECT_LE(m[a].taken.size(), plain[a].taken.size() + 1) << r.name << ", member " << a;
    }
  }
}

TEST(SnapshotSchedule, RanksFollowTheIdsAndTheFirstSnapshotComesEarly) {
  const Regime& r = kRegimes[0];
  SnapshotSchedule first(member_options(10, r)), second(member_options(20, r)), third(member_options(30, r));
  EXPECT_EQ(first.members(), 3u);
  EXPECT_EQ(third.rank(), 2u);
  EXPECT_EQ(first.threshold(), 1000u);
  EXPECT_EQ(second.threshold(), 666u);
  EXPECT_EQ(third.threshold(), 333u);
  third.taken(333);
  EXPECT_EQ(third.threshold(), 1000u) << "after the early snapshot the full thresholds again";
}

TEST(SnapshotSchedule, AnInstallMovesTheFollowerOffTheLeadersPoints) {
  for (const Regime& r : {kRegimes[0], kRegimes[1]}) {
    const std::uint64_t install_at = r.entries / 2 + 7;
    const auto plain = run_members(r, false, install_at);
    EXPECT_EQ(closest(plain, install_at), 0.0) << r.name;
    const auto m = run_members(r, true, install_at);
    EXPECT_GE(closest(m, install_at), 0.25) << r.name;
    // The follower's early snapshot at (3 - 2) / 3 of the thresholds.
    SnapshotSchedule f(member_options(30, r));
    f.restored(kMiB, 10);
    EXPECT_EQ(f.lead(), 1u);
    f.restored(kMiB, 20);
    EXPECT_EQ(f.lead(), 2u);
  }
}

TEST(SnapshotSchedule, ItsOwnSnapshotAtStartKeepsTheNodesPoints) {
  SnapshotSchedule s(member_options(30, kRegimes[0]));
  EXPECT_EQ(s.lead(), 1u);
  s.restored(kMiB);  // loaded from its own disk
  EXPECT_EQ(s.lead(), 3u);
  EXPECT_EQ(s.threshold(), 1000u);
  s.restored(kMiB, 99);  // a leader not in the list: no staggering to do
  EXPECT_EQ(s.lead(), 3u);
}

TEST(SnapshotSchedule, AloneOrMissingDoesNotStagger) {
  ClusterOptions o = options();
  o.node_id = 7;
  o.members = {{.id = 7}};
  SnapshotSchedule alone(o);
  EXPECT_EQ(alone.members(), 1u);
  EXPECT_EQ(alone.threshold(), 1000u);
  o.members = {{.id = 1}, {.id = 2}};  // not listed: an attached test node
  SnapshotSchedule missing(o);
  EXPECT_EQ(missing.members(), 1u);
  EXPECT_EQ(missing.threshold(), 1000u);
}

TEST(SnapshotSchedule, ARequestDoesNotWaitForTheEarlySnapshot) {
  SnapshotSchedule s(member_options(20, kRegimes[0]));
  s.request();
  EXPECT_EQ(s.threshold(), 1u);
  s.taken(1);
  EXPECT_EQ(s.lead(), 3u);
}

}  // namespace
}  // namespace catga::internal
