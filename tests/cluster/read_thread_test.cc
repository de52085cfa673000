// Where a consistent read's query runs. A read that must wait — for an apply
// to reach its index, for the leader to confirm its leadership — is woken by
// the Raft loop thread or the peer channel's thread; the query then runs on
// the node's read threads ("catga-read"), never on the thread that woke it,
// where a heavy query would hold up heartbeats, applies or forwarding. A read
// servable when asked runs on the caller's thread.
#include <gtest/gtest.h>
#include <pthread.h>

#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Consistency;
using catga::QueryOptions;
using namespace catga::testing;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

struct WhereAmI {
  using catga_message = catga::Query<std::string, "test.where-am-i.v1">;
  std::uint64_t nonce = 0;
  MSGPACK_DEFINE_MAP(nonce);
};

std::string this_thread_name() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

LocalCluster<bank::State> make_cluster() {
  return LocalCluster<bank::State>(3, [](catga::ApplicationBuilder<bank::State>& b, std::size_t) {
    bank::register_handlers(b).query<WhereAmI>(
        [](const bank::State&, const WhereAmI&) -> catga::Result<std::string> { return this_thread_name(); });
  });
}

}  // namespace

TEST(ReadThreads, AWokenReadRunsOnTheReadThreadsAndAReadyOneOnTheCaller) {
  auto cluster = make_cluster();
  std::size_t leader = 0;
  const std::uint64_t account = bank::open_on_leader(cluster, leader, "threads");
  ASSERT_NE(account, 0u);
  const std::size_t follower = (leader + 1) % 3;
  const std::string caller = this_thread_name();
  ASSERT_NE(caller, "catga-read");

  // Linearizable, on the leader (woken by its barrier, on the loop thread)
  // and on a follower (woken by the leader's read index, on the peer
  // channel's thread): both run on the read threads.
  for (std::size_t node : {leader, follower}) {
    auto where = cluster.app(node).send(WhereAmI{1}, QueryOptions{.consistency = Consistency::linearizable});
    ASSERT_THAT(where, IsOk());
    EXPECT_EQ(*where, "catga-read") << "node " << node + 1;
  }

  // read_your_writes of an index the follower has applied: the caller's thread.
  auto receipt = cluster.app(leader).send_receipt(bank::Deposit{.account = account, .amount = 1});
  ASSERT_THAT(receipt.result, IsOk());
  ASSERT_TRUE(cluster.wait_applied(receipt.index));
  auto ready = cluster.app(follower).send(
      WhereAmI{2}, QueryOptions{.consistency = Consistency::read_your_writes, .min_index = receipt.index});
  ASSERT_THAT(ready, IsOk());
  EXPECT_EQ(*ready, caller);

  // read_your_writes of an index the follower has not applied yet (its loop
  // is frozen): woken by the apply, on the loop thread: the read threads.
  cluster.pause(follower, std::chrono::milliseconds(1500));
  auto later = cluster.app(leader).send_receipt(bank::Deposit{.account = account, .amount = 1});
  ASSERT_THAT(later.result, IsOk());  // the leader and the other follower commit it
  auto woken = cluster.app(follower).send(
      WhereAmI{3}, QueryOptions{.consistency = Consistency::read_your_writes, .min_index = later.index});
  ASSERT_THAT(woken, IsOk());
  EXPECT_EQ(*woken, "catga-read");
}
