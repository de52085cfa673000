// SnapshotSchedule: the byte bounds turned into libraft's entry knobs.
#include "cluster/snapshot_schedule.hpp"

#include <gtest/gtest.h>

#include <limits>

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

}  // namespace
}  // namespace catga::internal
