// judge_bootstrap (src/cluster/bootstrap_guard.hpp): what a member with an
// empty data directory, started without join, does with its peers' answers.
// Real nodes: tests/cluster/data_dir_rules_test.cc.
#include "cluster/bootstrap_guard.hpp"

#include <gtest/gtest.h>

#include <optional>

using catga::Code;
using catga::Error;
using catga::internal::BootstrapBounds;
using catga::internal::BootstrapVerdict;
using catga::internal::judge_bootstrap;
using catga::internal::PeerAnswers;
using catga::internal::peer::MemberState;
using namespace std::chrono_literals;

namespace {

const BootstrapBounds kBounds{1000ms, 5000ms, 8000ms};

BootstrapVerdict judge(const PeerAnswers& answers, std::chrono::milliseconds elapsed, bool new_cluster = false,
                       std::optional<std::chrono::milliseconds> settling = std::nullopt) {
  return judge_bootstrap(3, "/var/lib/x", 2, answers, elapsed, settling.value_or(elapsed), kBounds, new_cluster);
}

MemberState state(bool announced, std::uint64_t term, bool settled, std::string identity = {}) {
  return MemberState{3, announced, std::move(identity), term, settled};
}

const Error kDown{Code::unavailable, "connection refused"};

}  // namespace

TEST(BootstrapGuard, APeerHoldingTheAnnouncementRefusesWithTheWayBack) {
  const auto v = judge({{1, state(true, 4, false, "77.123")}, {2, kDown}}, 0ms);
  ASSERT_EQ(v.kind, BootstrapVerdict::refuse);
  EXPECT_NE(v.why.find("member 1 says it already joined"), std::string::npos) << v.why;
  EXPECT_NE(v.why.find("77.123"), std::string::npos) << v.why;
  EXPECT_NE(v.why.find("remove -> wipe -> add"), std::string::npos) << v.why;
  EXPECT_NE(v.why.find("/var/lib/x"), std::string::npos) << v.why;
}

TEST(BootstrapGuard, AnAnnouncementWinsOverASettledLeaderWithout) {
  EXPECT_EQ(judge({{1, state(false, 4, true)}, {2, state(true, 4, false)}}, 0ms).kind, BootstrapVerdict::refuse);
}

TEST(BootstrapGuard, ASettledLeaderWithoutTheAnnouncementLetsItBootstrap) {
  EXPECT_EQ(judge({{1, state(false, 4, true)}, {2, kDown}}, 0ms).kind, BootstrapVerdict::bootstrap);
}

TEST(BootstrapGuard, EveryPeerFreshIsANewClusterForming) {
  EXPECT_EQ(judge({{1, state(false, 1, false)}, {2, state(false, 1, false)}}, 0ms).kind, BootstrapVerdict::bootstrap);
  // Peers waiting in their own guards answer term 0.
  EXPECT_EQ(judge({{1, state(false, 0, false)}, {2, state(false, 1, false)}}, 0ms).kind, BootstrapVerdict::bootstrap);
}

// Silence is what a whole-cluster outage with this voter's disk wiped looks
// like: keep asking, then refuse — one peer fresh and one silent too.
TEST(BootstrapGuard, SilentPeersAreAskedAgainThenRefusedNamingNewCluster) {
  for (const PeerAnswers& answers : {PeerAnswers{{1, kDown}, {2, kDown}}, PeerAnswers{{1, state(false, 1, false)}, {2, kDown}}}) {
    EXPECT_EQ(judge(answers, 10ms).kind, BootstrapVerdict::ask_again);
    EXPECT_EQ(judge(answers, 1000ms).kind, BootstrapVerdict::ask_again);
    EXPECT_EQ(judge(answers, 7999ms).kind, BootstrapVerdict::ask_again);
    const auto v = judge(answers, 8000ms);
    ASSERT_EQ(v.kind, BootstrapVerdict::refuse);
    EXPECT_NE(v.why.find("--new-cluster"), std::string::npos) << v.why;
    EXPECT_NE(v.why.find("within 8000 ms"), std::string::npos) << v.why;
    EXPECT_NE(v.why.find("remove -> wipe -> add"), std::string::npos) << v.why;
  }
  EXPECT_NE(judge({{1, kDown}, {2, kDown}}, 8000ms).why.find("0 of 2 peers answered"), std::string::npos);
}

// The operator's word (ClusterOptions::new_cluster): silence bootstraps
// after the quiet bound.
TEST(BootstrapGuard, WithNewClusterSilentPeersBootstrapAfterTheQuietBound) {
  EXPECT_EQ(judge({{1, kDown}, {2, kDown}}, 999ms, true).kind, BootstrapVerdict::ask_again);
  const auto v = judge({{1, kDown}, {2, kDown}}, 1000ms, true);
  EXPECT_EQ(v.kind, BootstrapVerdict::bootstrap);
  EXPECT_NE(v.why.find("0 of 2 peers answered"), std::string::npos) << v.why;
  EXPECT_EQ(judge({{1, state(false, 1, false)}, {2, kDown}}, 1000ms, true).kind, BootstrapVerdict::bootstrap);
}

// It never overrides what a peer knows.
TEST(BootstrapGuard, NewClusterDoesNotOverrideAnAnnouncementOrAPeerWithALog) {
  EXPECT_EQ(judge({{1, state(true, 4, false)}, {2, kDown}}, 0ms, true).kind, BootstrapVerdict::refuse);
  const PeerAnswers undecided{{1, state(false, 7, false)}, {2, kDown}};
  EXPECT_EQ(judge(undecided, 1000ms, true).kind, BootstrapVerdict::ask_again);
  EXPECT_EQ(judge(undecided, 5000ms, true).kind, BootstrapVerdict::refuse);
}

// Peers reachable but not caught up (no leader, a restart replaying): they
// may not have applied the announcement yet. Wait for them, then refuse.
TEST(BootstrapGuard, APeerThatHasSeenAnElectionButCannotTellYetIsWaitedForThenRefused) {
  const PeerAnswers answers{{1, state(false, 7, false)}, {2, state(false, 1, false)}};
  EXPECT_EQ(judge(answers, 1000ms).kind, BootstrapVerdict::ask_again);
  EXPECT_EQ(judge(answers, 4999ms).kind, BootstrapVerdict::ask_again);
  const auto v = judge(answers, 5000ms);
  ASSERT_EQ(v.kind, BootstrapVerdict::refuse);
  EXPECT_NE(v.why.find("member 1 holds a cluster log"), std::string::npos) << v.why;
}

// The wait counts from the first answer that showed an election, not from the
// guard's start (issue 13): under 900 ms stalls in every 1000 ms, four members
// of a fresh cluster bootstrapped while the fifth still asked, took 24 s to
// elect a leader, and the fifth — long past settle_bound since its start —
// refused at its first sight of their election, 48 ms before the leader came.
TEST(BootstrapGuard, AnElectionSeenLateIsWaitedForTheWholeSettleBound) {
  const PeerAnswers answers{{1, state(false, 7, false)}, {2, state(false, 1, false)}};
  EXPECT_EQ(judge(answers, 20000ms, false, 0ms).kind, BootstrapVerdict::ask_again);
  EXPECT_EQ(judge(answers, 24999ms, false, 4999ms).kind, BootstrapVerdict::ask_again);
  EXPECT_EQ(judge(answers, 25000ms, false, 5000ms).kind, BootstrapVerdict::refuse);
  const PeerAnswers leader{{1, state(false, 7, true)}, {2, state(false, 1, false)}};
  EXPECT_EQ(judge(leader, 24000ms, false, 4000ms).kind, BootstrapVerdict::bootstrap);
}

TEST(BootstrapGuard, BoundsFollowTheElectionTimeout) {
  const auto b = BootstrapBounds::for_election_timeout(500ms);
  EXPECT_EQ(b.quiet_bound, 500ms);
  EXPECT_EQ(b.settle_bound, 5000ms);
  const auto fast = BootstrapBounds::for_election_timeout(50ms);
  EXPECT_EQ(fast.quiet_bound, 200ms);
  EXPECT_EQ(fast.settle_bound, 3000ms);
  EXPECT_EQ(fast.silent_bound, 3000ms);
  EXPECT_EQ(BootstrapBounds::for_election_timeout(1000ms).silent_bound, 30000ms);
}

// GuardClock: the bounds count the time the process ran. A stop (SIGSTOP, a
// CPU quota's throttling) shows as a tick that came late; its excess over one
// tick is not counted, nor is the gap since the last tick when the guard reads
// the clock first after a stop. Ordinary lateness (within two ticks) is.
TEST(BootstrapGuard, TheClockLeavesOutTimeTheProcessDidNotRun) {
  using catga::internal::GuardClock;
  const auto t0 = GuardClock::Clock::time_point{} + 1h;
  GuardClock clock(t0, 10ms);
  auto t = t0;
  for (int i = 0; i < 10; ++i) clock.tick(t += 15ms);  // late, within two ticks: run
  EXPECT_EQ(clock.elapsed(t), 150ms);
  clock.tick(t += 900ms);  // stopped: 890 ms not run
  EXPECT_EQ(clock.elapsed(t), 160ms);
  EXPECT_EQ(clock.not_run(t), 890ms);
  // Read before the ticker ran again after a stop: the gap is left out already.
  EXPECT_EQ(clock.elapsed(t + 500ms), 170ms);
  EXPECT_EQ(clock.elapsed(t + 15ms), 175ms);
  clock.tick(t += 500ms);
  EXPECT_EQ(clock.elapsed(t), 170ms);
  EXPECT_EQ(clock.elapsed(t0 - 1s), 0ms);
}
