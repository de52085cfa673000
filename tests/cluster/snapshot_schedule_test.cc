// SnapshotSchedule: the byte bounds turned into libraft's entry knobs.
#include "cluster/snapshot_schedule.hpp"

#include <gtest/gtest.h>

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
  s.restored();
  EXPECT_EQ(s.bytes_since_snapshot(), 0u);
  EXPECT_EQ(s.threshold(), 1000u);
}

TEST(SnapshotSchedule, UnknownSpanFallsBackToTheAppliedEntries) {
  SnapshotSchedule s(options(4 * kMiB, kMiB));
  for (int i = 0; i < 8; ++i) s.applied(512 * 1024);
  EXPECT_EQ(s.taken(0), 2u);
}

}  // namespace
}  // namespace catga::internal
