// A cluster started with one member and grown (docs/operations.md, "Growing
// from one member") whose first member's data directory is later emptied:
// restarted with its first options (members naming only itself), it
// bootstraps a cluster of its own, and the bootstrap guard cannot stop that
// (it asks only the members the options name). Before the receive guard of
// raft_foreign.h, once the old cluster reached it, its entries (term 1, like
// the old cluster's first ones) were taken as the old cluster's where index
// and term matched, and the members differed for good (issue 13). Now the
// node refuses that cluster's messages and stops itself, naming the remedy;
// the old cluster keeps every acknowledged command. Real Applications over
// Raft nodes on 127.0.0.1.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "catga/testing.hpp"
#include "cluster_test_support.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using namespace catga::testing;
using testsupport::LocalCluster;
using testsupport::wait_for;
namespace fs = std::filesystem;

namespace {

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

// Runs `change` on the current leader until it is accepted (bounded).
catga::Result<void> on_leader(LocalCluster<bank::State>& cluster,
                              const std::function<catga::Result<void>(catga::Application&)>& change) {
  catga::Result<void> r = catga::Error{catga::Code::unavailable, "no leader"};
  for (int i = 0; i < 200; ++i) {
    auto l = cluster.leader();
    if (!l) break;  // none within 30 s
    r = change(cluster.app(*l));
    if (r || (r.error().code() != catga::Code::failed_precondition && r.error().code() != catga::Code::unavailable)) {
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return r;
}

long voters_seen_by(catga::Application& app) {
  auto s = app.status();
  return std::count_if(s.members.begin(), s.members.end(),
                       [](const catga::MemberStatus& m) { return m.member.role == catga::MemberRole::voter; });
}

// Opens `n` accounts through the current leader; returns them as acknowledged.
std::vector<bank::Account> open_accounts(LocalCluster<bank::State>& cluster, const std::string& prefix, int n) {
  std::vector<bank::Account> opened;
  for (int i = 0, attempts = 0; i < n && attempts < 50; ++attempts) {
    auto leader = cluster.leader();
    if (!leader) break;  // none within 30 s
    const std::string owner = prefix + std::to_string(i);
    auto r = cluster.app(*leader).send(bank::Open{.owner = owner});
    if (!r) continue;  // not acknowledged: try again
    opened.push_back(bank::Account{.id = r->id, .owner = owner});
    ++i;
  }
  return opened;
}

}  // namespace

TEST(LoneMember, FirstMemberWipedAndRestartedAloneStopsItselfAndTheClusterKeepsItsState) {
  LocalCluster<bank::State> cluster(1, register_bank);
  ASSERT_TRUE(cluster.leader());
  // Member 1's first options: a cluster naming only itself.
  const catga::Member first = cluster.member(0);
  auto acknowledged = open_accounts(cluster, "alone", 5);
  for (int grown = 0; grown < 2; ++grown) {
    const std::size_t added = cluster.add_node();
    const catga::Member member = cluster.member(added);
    ASSERT_THAT(on_leader(cluster, [&](catga::Application& app) { return app.add_member(member); }), IsOk());
    ASSERT_TRUE(wait_for([&] { return voters_seen_by(cluster.app(added)) == static_cast<long>(added + 1); }))
        << "node " << added + 1 << " never saw itself a voter";
  }
  const auto grown = open_accounts(cluster, "grown", 5);
  acknowledged.insert(acknowledged.end(), grown.begin(), grown.end());
  ASSERT_EQ(acknowledged.size(), 10u);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  ASSERT_TRUE(cluster.wait_applied(cluster.app(*leader).status().commit_index));

  // A whole-cluster restart during which member 1's data directory was emptied.
  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  fs::remove_all(cluster.options(0).data_dir);
  ASSERT_THAT(cluster.try_start(0, [&](catga::ClusterOptions& o) { o.members = {first}; }), IsOk());
  // Nothing tells it apart from a new one-member cluster yet: it bootstraps
  // and acknowledges a write (the rules cannot prevent this part; the
  // operations guide tells the operator to name every member instead).
  ASSERT_TRUE(cluster.leader());
  auto alone = cluster.app(0).send(bank::Open{.owner = "while-alone"});
  ASSERT_THAT(alone, IsOk());

  // The old cluster comes back; its members reach member 1.
  for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
    cluster.set_joining(i, false);
    cluster.start(i);
  }
  ASSERT_TRUE(wait_for([&] { return !cluster.app(0).status().failure.empty(); }))
      << "member 1 took part in the old cluster: role " << catga::to_string(cluster.app(0).status().role)
      << ", term " << cluster.app(0).status().term;
  const auto stopped = cluster.app(0).status();
  EXPECT_EQ(stopped.role, catga::NodeRole::unavailable);
  EXPECT_NE(stopped.failure.find("member 1 bootstrapped a cluster of its own"), std::string::npos) << stopped.failure;
  EXPECT_NE(stopped.failure.find("another cluster lists member 1 as a member"), std::string::npos) << stopped.failure;
  EXPECT_NE(stopped.failure.find("remove -> wipe -> add"), std::string::npos) << stopped.failure;
  EXPECT_NE(stopped.failure.find("--join"), std::string::npos) << stopped.failure;
  // The stopped node serves nothing it holds.
  auto refused = cluster.app(0).send(bank::GetAccount{.account = alone->id}, {.consistency = catga::Consistency::local});
  ASSERT_FALSE(refused);

  // Members 2 and 3 elect a leader between them and hold every account the
  // old cluster acknowledged, as acknowledged (not member 1's "while-alone").
  leader = cluster.leader();
  ASSERT_TRUE(leader);
  ASSERT_NE(*leader, 0u);
  for (const auto& account : acknowledged) {
    auto r = cluster.app(*leader).send(bank::GetAccount{.account = account.id},
                                       {.consistency = catga::Consistency::linearizable});
    ASSERT_THAT(r, IsOk()) << "account " << account.id;
    EXPECT_EQ(r->owner, account.owner) << "account " << account.id;
  }
  // Writes go on, and the two agree.
  ASSERT_EQ(open_accounts(cluster, "after", 3).size(), 3u);
  ASSERT_TRUE(wait_for([&] {
    std::uint64_t commit = 0;
    for (std::size_t i : {std::size_t{1}, std::size_t{2}}) commit = std::max(commit, cluster.app(i).status().commit_index);
    return cluster.app(1).status().applied_index >= commit && cluster.app(2).status().applied_index >= commit;
  }));
  EXPECT_EQ(cluster.digest(1), cluster.digest(2));
  // Member 1 is still a voter of the old cluster (only the operator removes
  // it), and it stays stopped.
  EXPECT_EQ(voters_seen_by(cluster.app(*leader)), 3);
  EXPECT_FALSE(cluster.app(0).status().failure.empty());
}

// A cluster grown from one member and shrunk back to it by a removal is not
// "alone since its bootstrap": its configuration is a later entry. A removed
// member that still runs, hears from no leader and asks member 1 for votes
// does not make member 1 stop. (A check that something does not happen: it
// waits ten election timeouts once member 2 is seen leaderless.)
TEST(LoneMember, ClusterShrunkBackToOneMemberIgnoresARemovedMemberThatStillRuns) {
  LocalCluster<bank::State> cluster(1, register_bank);
  ASSERT_TRUE(cluster.leader());
  const std::size_t added = cluster.add_node();
  const catga::Member member = cluster.member(added);
  ASSERT_THAT(on_leader(cluster, [&](catga::Application& app) { return app.add_member(member); }), IsOk());
  ASSERT_TRUE(wait_for([&] { return voters_seen_by(cluster.app(added)) == 2; }));
  ASSERT_EQ(open_accounts(cluster, "two", 3).size(), 3u);
  // Member 2 is stopped first, so that it never hears of its removal and,
  // started again, still counts itself a voter with member 1.
  cluster.stop(1);
  ASSERT_THAT(cluster.app(0).remove_member(2), IsOk());
  // Restarted with its first options, member 1 holds a configuration of one
  // voter whose entry is not its bootstrap.
  cluster.stop(0);
  ASSERT_THAT(cluster.try_start(0, [&](catga::ClusterOptions& o) { o.members = {cluster.member(0)}; }), IsOk());
  ASSERT_TRUE(cluster.leader());
  cluster.set_joining(1, false);
  cluster.start(1);
  ASSERT_TRUE(wait_for([&] {
    auto s = cluster.app(1).status();
    return s.leader_id == 0 && voters_seen_by(cluster.app(1)) == 2;
  })) << "member 2 learnt of its removal: nothing would be sent to member 1";
  std::this_thread::sleep_for(10 * cluster.options(0).election_timeout);
  ASSERT_EQ(open_accounts(cluster, "one", 3).size(), 3u);
  EXPECT_TRUE(cluster.app(0).status().failure.empty()) << cluster.app(0).status().failure;
  EXPECT_EQ(cluster.app(0).status().role, catga::NodeRole::leader);
}
