// SnapshotWriteWatch: a snapshot libraft keeps failing to write is reported
// (once, then at most once a minute) and counted once; a slow one is not.
#include "cluster/snapshot_write_watch.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>

namespace catga::internal {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
using Clock = SnapshotWriteWatch::Clock;

constexpr std::uint64_t kMiB = 1u << 20;

struct FakeDisk {
  std::uint64_t free = 100 * kMiB;
  int probe = 0;
  int looks = 0;
  SnapshotWriteWatch::Disk disk() {
    return {[this] {
              ++looks;
              return free;
            },
            [this] { return probe; }};
  }
};

TEST(SnapshotWriteWatch, AWriteDoneInTimeSaysNothingAndLooksAtNoDisk) {
  SnapshotWriteWatch w;
  FakeDisk d;
  const auto t0 = Clock::now();
  w.started(100, 10 * kMiB, t0);
  d.free = 0;
  EXPECT_FALSE(w.check(50, t0 + 1s, d.disk()));
  EXPECT_FALSE(w.check(100, t0 + 2s, d.disk()));
  EXPECT_FALSE(w.pending());
  EXPECT_EQ(d.looks, 0) << "the disk is asked only about a write pending for libraft's retry period";
}

TEST(SnapshotWriteWatch, AFullDiskIsReportedCountedOnceAndRepeatedAtMostEveryMinute) {
  SnapshotWriteWatch w;
  FakeDisk d;
  d.free = 3 * kMiB;
  const auto t0 = Clock::now();
  w.started(100, 10 * kMiB, t0);
  EXPECT_FALSE(w.check(50, t0 + 4s, d.disk()));
  auto first = w.check(50, t0 + 5s, d.disk());
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->failed_now);
  EXPECT_THAT(first->message, HasSubstr("index 100"));
  EXPECT_THAT(first->message, HasSubstr("not enough disk space: 10.0 MiB needed, 3.0 MiB free"));
  int reports = 0;
  for (int s = 6; s <= 125; ++s) {
    if (auto r = w.check(50, t0 + std::chrono::seconds(s), d.disk())) {
      ++reports;
      EXPECT_FALSE(r->failed_now) << "one write, counted once";
    }
  }
  EXPECT_EQ(reports, 2) << "again at 65 s and 125 s";
  d.free = 100 * kMiB;
  auto done = w.check(100, t0 + 130s, d.disk());
  ASSERT_TRUE(done);
  EXPECT_TRUE(done->recovered);
  EXPECT_THAT(done->message, HasSubstr("written, 130 s after"));
  EXPECT_FALSE(w.pending());
}

TEST(SnapshotWriteWatch, AnUnwritableDirectoryIsAFailureASlowDiskIsNot) {
  SnapshotWriteWatch w;
  FakeDisk d;
  const auto t0 = Clock::now();
  w.started(7, kMiB, t0);
  EXPECT_FALSE(w.check(0, t0 + 10s, d.disk())) << "room enough and the probe writes: slow, not failing";
  d.probe = EIO;
  auto r = w.check(0, t0 + 12s, d.disk());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->failed_now);
  EXPECT_THAT(r->message, HasSubstr("cannot be written"));
}

TEST(SnapshotWriteWatch, ANewSnapshotStartsAFreshCount) {
  SnapshotWriteWatch w;
  FakeDisk d;
  d.free = 0;
  const auto t0 = Clock::now();
  w.started(1, kMiB, t0);
  ASSERT_TRUE(w.check(0, t0 + 5s, d.disk()));
  EXPECT_TRUE(w.check(1, t0 + 6s, d.disk())->recovered);
  w.started(2, kMiB, t0 + 7s);
  auto again = w.check(1, t0 + 12s, d.disk());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->failed_now);
}

}  // namespace
}  // namespace catga::internal
