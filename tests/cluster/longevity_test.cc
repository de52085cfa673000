// What a year of operation repeats many times must not leave anything behind:
// a member restarted, a leadership moved, a command forwarded over a fresh
// peer connection. Each of these opens and closes sockets, files, timers and
// threads; a leak of one descriptor per restart is invisible in a short test
// and fatal after months (the process hits its descriptor limit and stops
// accepting peers). The nodes run in this one process, so the process's open
// descriptors and threads are theirs: after warm-up cycles they must return
// to the same level however many more cycles follow.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using namespace catga::testing;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

std::size_t entries_in(const char* dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}
std::size_t open_descriptors() { return entries_in("/proc/self/fd"); }
std::size_t threads() { return entries_in("/proc/self/task"); }

// One cycle: a follower restarted, commands forwarded through it and sent
// on the leader, then leadership moved to another member.
void cycle(LocalCluster<bank::State>& cluster, std::uint64_t account, int n) {
  auto leader = cluster.leader();
  ASSERT_TRUE(leader) << "cycle " << n << ": no leader";
  const std::size_t follower = (*leader + 1 + static_cast<std::size_t>(n) % 2) % cluster.size();
  cluster.stop(follower);
  cluster.start(follower);
  ASSERT_TRUE(wait_for([&] { return cluster.app(follower).status().leader_id != 0; }))
      << "cycle " << n << ": the restarted member heard of no leader";
  for (int i = 0; i < 5; ++i) {
    ASSERT_THAT(cluster.app(follower).send(bank::Deposit{.account = account, .amount = 1}), IsOk())
        << "cycle " << n << ", forwarded deposit " << i;
    ASSERT_THAT(cluster.app(*leader).send(bank::Deposit{.account = account, .amount = 1}), IsOk())
        << "cycle " << n << ", deposit " << i;
  }
  // Moves leadership on (a refusal while the restarted member catches up is
  // fine: the next cycle restarts another member either way).
  (void)cluster.app(*leader).transfer_leadership();
}

}  // namespace

TEST(Longevity, RestartsAndLeaderChangesLeaveNoDescriptorOrThreadBehind) {
  LocalCluster<bank::State> cluster(3, [](catga::ApplicationBuilder<bank::State>& b, std::size_t) {
    bank::register_handlers(b);
  });
  std::size_t leader = 0;
  const std::uint64_t account = bank::open_on_leader(cluster, leader, "longevity");
  ASSERT_NE(account, 0u);

  // Warm-up: connections between every pair exist, pools have their threads.
  // The level is the highest seen after any of these cycles settled.
  constexpr int kWarmUp = 3, kCycles = 20;
  std::size_t fd_level = 0, thread_level = 0;
  for (int n = 0; n < kWarmUp; ++n) {
    cycle(cluster, account, n);
    if (HasFatalFailure()) return;
    ASSERT_TRUE(cluster.leader());
    fd_level = std::max(fd_level, open_descriptors());
    thread_level = std::max(thread_level, threads());
  }

  for (int n = kWarmUp; n < kWarmUp + kCycles; ++n) {
    cycle(cluster, account, n);
    if (HasFatalFailure()) return;
  }
  auto settled = cluster.leader();
  ASSERT_TRUE(settled);
  EXPECT_TRUE(cluster.converged(*settled));

  // A few connections may still be in the middle of reconnecting; a leak of
  // one descriptor per cycle would be 20 over the level.
  constexpr std::size_t kSlack = 6;
  EXPECT_TRUE(wait_for([&] { return open_descriptors() <= fd_level + kSlack; }, std::chrono::seconds(15)))
      << open_descriptors() << " descriptors open after " << kCycles << " more cycles; " << fd_level
      << " after the warm-up";
  EXPECT_TRUE(wait_for([&] { return threads() <= thread_level + 2; }, std::chrono::seconds(15)))
      << threads() << " threads after " << kCycles << " more cycles; " << thread_level << " after the warm-up";
}
