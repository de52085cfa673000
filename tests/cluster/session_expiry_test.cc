// Client sessions over real Raft nodes on 127.0.0.1 when hours of leader
// time pass: the leaders' wall clock is shifted (wall_clock.hpp's test hook)
// while the test runs for seconds.
#include <gtest/gtest.h>

#include <thread>

#include "catga/testing.hpp"
#include "cluster/session_client.hpp"
#include "cluster/session_table.hpp"
#include "cluster/wall_clock.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using namespace catga::testing;
using namespace std::chrono_literals;
using catga::internal::shift_wall_clock_for_test;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

// Undoes the test's clock shift and keep-alive period (a clock going back is
// one of the cases the session table handles).
struct ClockShift {
  std::chrono::nanoseconds total{0};
  void shift(std::chrono::nanoseconds by) {
    shift_wall_clock_for_test(by);
    total += by;
  }
  ~ClockShift() {
    shift_wall_clock_for_test(-total);
    catga::internal::set_keep_alive_every_for_test(catga::internal::SessionTable::kKeepAliveEvery);
  }
};

// Three nodes; the "idle" one (a follower) opened its session with one
// command, then 90 minutes of leader time pass, in 90 s steps, with a command
// from the leader's node at each step (its entries move the session table's
// time); `between` runs after each step.
class SessionExpiry : public ::testing::Test {
 protected:
  template <class F>
  void night_passes(F between) {
    auto found = cluster.leader();
    ASSERT_TRUE(found);
    leader = *found;
    idle = (leader + 1) % 3;
    ASSERT_TRUE(wait_for([&] { return cluster.app(idle).status().leader_id != 0; }));
    auto opened = cluster.app(idle).send(bank::Open{.owner = "night", .initial = 0});
    ASSERT_THAT(opened, IsOk());
    account = opened->id;
    for (int i = 0; i < 60; ++i) {
      clock.shift(90s);
      ASSERT_THAT(cluster.app(leader).send(bank::Deposit{.account = account, .amount = 1}), IsOk());
      between();
    }
  }

  ClockShift clock;
  LocalCluster<bank::State> cluster{3, register_bank};
  std::size_t leader = 0;
  std::size_t idle = 0;
  std::uint64_t account = 0;
};

}  // namespace

// A node whose last command was more than an hour (of leader time) ago
// answered its next command with deadline_exceeded "client session expired;
// the outcome of this command is unknown", although nothing had applied.
// Now the state machine says "session unknown, not applied" (a flag) and the
// node resends under a new session: the command applies once.
TEST_F(SessionExpiry, IdleSessionNoLongerAnswersOutcomeUnknown) {
  // No keep-alive fires: the test lasts seconds of the node's steady clock.
  night_passes([] {});
  const auto retried = cluster.app(idle).status().counters.commands_retried;
  EXPECT_THAT(cluster.app(idle).send(bank::Deposit{.account = account, .amount = 100}), IsOkAndHolds(160));
  EXPECT_GT(cluster.app(idle).status().counters.commands_retried, retried);  // resent once, under a new session
  EXPECT_THAT(cluster.app(idle).send(bank::Deposit{.account = account, .amount = 1}), IsOkAndHolds(161));
}

// The same night with keep-alives: the idle node's session survives, so its
// next command needs no resend.
TEST_F(SessionExpiry, IdleSessionSurvivesThroughKeepAlives) {
  catga::internal::set_keep_alive_every_for_test(10ms);
  night_passes([&] {
    // Wait until the idle node applied past the leader's command and the log
    // moved on: its keep-alive (every 10 ms of its steady clock) lands in
    // each step.
    const auto after = cluster.app(leader).status().commit_index;
    ASSERT_TRUE(wait_for([&] {
      return cluster.app(leader).status().commit_index > after + 2 && cluster.app(idle).status().applied_index > after;
    }));
  });
  const auto retried = cluster.app(idle).status().counters.commands_retried;
  EXPECT_THAT(cluster.app(idle).send(bank::Deposit{.account = account, .amount = 100}), IsOkAndHolds(160));
  EXPECT_EQ(cluster.app(idle).status().counters.commands_retried, retried);
}
