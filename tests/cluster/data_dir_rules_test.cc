// The data directory rules (docs/operations.md, "Data directory rules"), on
// real Applications over Raft nodes on 127.0.0.1. Each rule alone on a lone
// RaftNode: data_dir_marker_test.cc.
//
// The regression behind them (issue 13, item 1): following the old
// "Backup and restore" advice — back up a stopped follower's data directory,
// later put that copy back while another member is down — lost every command
// acknowledged in between once the leader died: the restored voter had
// forgotten its log and its vote, and with the lagging member it elected a
// leader that never had the committed entries.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <thread>
#include <string>
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

// Once every node of a 3-node cluster holds every member's announcement.
bool every_member_announced(LocalCluster<bank::State>& cluster) {
  return wait_for([&] {
    for (std::size_t i = 0; i < 3; ++i)
      if (cluster.app(i).status().announcements.size() != 3) return false;
    return true;
  });
}

// Opens `n` accounts through the leader; returns their ids (every one acknowledged).
std::vector<std::uint64_t> open_accounts(LocalCluster<bank::State>& cluster, const std::string& prefix, int n) {
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < n; ++i) {
    auto leader = cluster.leader();
    if (!leader) break;
    auto r = cluster.app(*leader).send(bank::Open{.owner = prefix + std::to_string(i)});
    if (!r) {
      --i;  // nothing acknowledged: try again on the next leader
      continue;
    }
    ids.push_back(r->id);
  }
  return ids;
}

// How many of `ids` a linearizable read on the current leader cannot find.
std::size_t missing_on_leader(LocalCluster<bank::State>& cluster, const std::vector<std::uint64_t>& ids) {
  auto leader = cluster.leader();
  if (!leader) return ids.size();
  std::size_t missing = 0;
  for (std::uint64_t id : ids) {
    auto r = cluster.app(*leader).send(bank::GetAccount{.account = id}, {.consistency = catga::Consistency::linearizable});
    if (!r) ++missing;
  }
  return missing;
}

// Runs a membership change on the current leader until it is done: a change
// interrupted by an election is retried (bounded); `done_already` is the code
// a retry gets when the interrupted attempt did commit.
catga::Result<void> change_on_leader(LocalCluster<bank::State>& cluster,
                                     const std::function<catga::Result<void>(catga::Application&)>& change,
                                     catga::Code done_already) {
  catga::Result<void> r = catga::Error{catga::Code::unavailable, "no leader"};
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto leader = cluster.leader();
    if (!leader) continue;
    r = change(cluster.app(*leader));
    if (r || (attempt > 0 && r.error().code() == done_already)) return {};
    if (r.error().code() != catga::Code::unavailable && r.error().code() != catga::Code::deadline_exceeded &&
        r.error().code() != catga::Code::failed_precondition) {
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return r;
}

// The documented way back for member i (operations.md, "Data directory
// rules"): remove it, wipe its data directory, start it with --join, add it
// again; returns once every node applied the leader's commit index.
void remove_wipe_add(LocalCluster<bank::State>& cluster, std::size_t i) {
  const std::uint64_t id = i + 1;
  ASSERT_THAT(change_on_leader(cluster, [&](catga::Application& app) { return app.remove_member(id); },
                               catga::Code::not_found),
              IsOk());
  fs::remove_all(cluster.options(i).data_dir);
  cluster.set_joining(i);
  cluster.start(i);
  ASSERT_THAT(change_on_leader(cluster, [&](catga::Application& app) { return app.add_member(cluster.member(i)); },
                               catga::Code::already_exists),
              IsOk());
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  ASSERT_TRUE(cluster.wait_applied(cluster.app(*leader).status().commit_index));
}

void copy_dir(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

}  // namespace

// The operator story of the old docs, step by step. Node 3 is backed up while
// stopped, runs on, then is put back on that copy while node 2 is down; then
// the leader dies. Before the rules the restored node started and, with node 2,
// elected a leader without the 50 acknowledged accounts. Now it refuses to
// start, naming the copy; the member is removed, wiped and added again, and
// every acknowledged account is still there.
TEST(DataDirRules, RestoredOldDataDirOfAVoterIsRefusedAndNothingAcknowledgedIsLost) {
  LocalCluster<bank::State> cluster(3, register_bank);
  TempDir backups;
  ASSERT_TRUE(cluster.leader());
  const auto before = open_accounts(cluster, "before-", 5);
  ASSERT_EQ(before.size(), 5u);
  ASSERT_TRUE(cluster.wait_applied(cluster.app(*cluster.leader()).status().commit_index));

  // "Back up a stopped follower's data directory": node 3, stopped, copied, restarted.
  const fs::path dir3 = cluster.options(2).data_dir;
  cluster.stop(2);
  copy_dir(dir3, backups.path() / "node3");
  cluster.start(2);

  // Node 2 goes down; 50 accounts are acknowledged by nodes 1 and 3.
  cluster.stop(1);
  const auto acknowledged = open_accounts(cluster, "acked-", 50);
  ASSERT_EQ(acknowledged.size(), 50u);

  // "Restore it while another member is down": node 3 is put back on the copy.
  cluster.stop(2);
  copy_dir(backups.path() / "node3", dir3);
  auto restarted = cluster.try_start(2);
  if (restarted) {
    // What the old advice led to: the leader (node 1) dies, node 2 returns.
    ASSERT_TRUE(cluster.leader());
    cluster.stop(0);
    cluster.start(1);
    const std::size_t lost = missing_on_leader(cluster, acknowledged);
    ADD_FAILURE() << "node 3 started on an old copy of its data directory; after the leader died, " << lost
                  << " of " << acknowledged.size() << " acknowledged accounts were gone";
    return;
  }
  EXPECT_EQ(restarted.error().code(), catga::Code::failed_precondition) << restarted.error().to_string();
  EXPECT_NE(restarted.error().message().find("copy"), std::string::npos) << restarted.error().message();
  EXPECT_NE(restarted.error().message().find("--join"), std::string::npos) << restarted.error().message();

  // The rule's way back: node 2 returns, node 3 is removed, wiped, added again.
  cluster.start(1);
  ASSERT_NO_FATAL_FAILURE(remove_wipe_add(cluster, 2));
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);

  // The leader dies too: nodes 2 and 3 still have everything.
  cluster.stop(*leader);
  ASSERT_TRUE(cluster.leader());
  EXPECT_EQ(missing_on_leader(cluster, acknowledged), 0u);
  EXPECT_EQ(missing_on_leader(cluster, before), 0u);
}

// A voter whose data directory is emptied and which is started with --join
// without being removed first is still a voter for the others; with a member
// that missed 50 acknowledged accounts, its vote would elect a leader without
// them, and the returning old leader's entries would be overwritten. It
// grants no vote: libraft 0.22.1 itself refuses to vote while the node is
// not a voter in the configuration it holds (none yet: electionVote, "local
// server is not voting"), and the node's own guard drops vote requests until
// the leader lists it as a spare (this test does not isolate the guard: it
// passes without it, by libraft's rule). Nodes 2 and 3 elect nobody, node 1
// returns and wins, nothing is lost.
TEST(DataDirRules, AVoterWipedAndStartedWithJoinWithoutRemovalElectsNobody) {
  LocalCluster<bank::State> cluster(3, register_bank);
  ASSERT_TRUE(cluster.leader());
  // Node 1 leads (the survivor in the story). A transfer aborts while the
  // target is behind (right after start the members announce themselves):
  // ask again until it leads.
  ASSERT_TRUE(wait_for([&] {
    const auto leader = cluster.leader();
    if (leader && *leader != 0) (void)cluster.app(*leader).transfer_leadership(1);
    return cluster.leader() == std::optional<std::size_t>(0);
  }));
  cluster.stop(1);  // node 2 misses what follows
  const auto acknowledged = open_accounts(cluster, "acked-", 50);
  ASSERT_EQ(acknowledged.size(), 50u);
  // Node 3 loses its data; the leader dies; node 3 comes back empty with
  // --join, not removed (so it never heard of a leader), and node 2 returns.
  // Node 3 drops node 2's vote requests.
  cluster.stop(2);
  fs::remove_all(cluster.options(2).data_dir);
  cluster.stop(0);
  cluster.set_joining(2);
  cluster.start(2);
  cluster.start(1);
  EXPECT_FALSE(cluster.leader(std::chrono::seconds(3))) << "nodes 2 and 3 elected a leader without node 1";
  // Node 1 returns: it has everything and wins.
  cluster.start(0);
  ASSERT_TRUE(cluster.leader());
  EXPECT_EQ(missing_on_leader(cluster, acknowledged), 0u);
}

// The same voter once it has caught up. Wiped and started with --join
// without being removed, it receives the log again — the configuration in it
// lists it as a voter — and used to campaign once no leader was heard from:
// with the vote of a member that lacked entries only it (before the wipe) and
// the stopped leader held, it could win and lose them. Until a leader adds
// it, it neither votes nor campaigns: with the leader stopped, it and the
// other member elect nobody.
TEST(DataDirRules, AVoterWipedAndStartedWithJoinWithoutRemovalNeverCampaigns) {
  LocalCluster<bank::State> cluster(3, register_bank);
  ASSERT_TRUE(cluster.leader());
  ASSERT_TRUE(every_member_announced(cluster));
  // Node 3 is not the leader (the story needs it a follower when wiped).
  ASSERT_TRUE(wait_for([&] {
    const auto leader = cluster.leader();
    if (leader && *leader == 2) (void)cluster.app(2).transfer_leadership(1);
    return cluster.leader() && *cluster.leader() != 2;
  }));
  const auto before = open_accounts(cluster, "before-", 20);
  ASSERT_EQ(before.size(), 20u);
  cluster.stop(2);
  fs::remove_all(cluster.options(2).data_dir);
  cluster.set_joining(2);
  cluster.start(2);
  // The leader it had may leave it behind for a while (its progress for
  // node 3 dates from before the wipe); a new leader starts afresh. Hand
  // leadership over until node 3 has caught up.
  ASSERT_TRUE(wait_for([&] {
    const auto leader = cluster.leader();
    if (!leader) return false;
    const auto lead = cluster.app(*leader).status();
    if (lead.commit_index > 0 && cluster.app(2).status().applied_index >= lead.commit_index) return true;
    (void)cluster.app(*leader).transfer_leadership(*leader == 0 ? 2 : 1);
    return false;
  }, std::chrono::seconds(60)))
      << "node 3 did not catch up";
  // The leader dies: node 3, caught up and listed as a voter, is the only
  // member that could win (the other's vote requests it drops).
  const std::size_t leader = *cluster.leader();
  const std::size_t other = leader == 0 ? 1 : 0;
  cluster.stop(leader);
  EXPECT_FALSE(cluster.leader(std::chrono::seconds(5))) << "node " << other + 1 << " and the wiped node 3 elected a leader";
  EXPECT_NE(cluster.app(2).status().role, catga::NodeRole::leader);
  // The leader returns: the cluster serves again, nothing acknowledged lost.
  cluster.start(leader);
  ASSERT_TRUE(cluster.leader());
  EXPECT_EQ(missing_on_leader(cluster, before), 0u);
}

// A voter whose data directory is wiped, restarted without --join, used to
// bootstrap the same configuration at index 1: it had forgotten its log and
// its vote, yet voted. Its peers hold its announcement, so it now refuses to
// start, naming the way back; the cluster keeps its data; remove -> wipe ->
// add brings it back with everything.
TEST(DataDirRules, AVoterWipedAndRestartedWithoutJoinRefusesToBootstrap) {
  LocalCluster<bank::State> cluster(3, register_bank);
  ASSERT_TRUE(cluster.leader());
  const auto before = open_accounts(cluster, "before-", 20);
  ASSERT_EQ(before.size(), 20u);
  ASSERT_TRUE(every_member_announced(cluster));
  const std::size_t wiped = (*cluster.leader() + 1) % 3;
  const fs::path dir = cluster.options(wiped).data_dir;
  cluster.stop(wiped);
  fs::remove_all(dir);

  auto restarted = cluster.try_start(wiped);
  ASSERT_FALSE(restarted) << "node " << wiped + 1 << " bootstrapped on its wiped data directory";
  EXPECT_EQ(restarted.error().code(), catga::Code::failed_precondition);
  const std::string message(restarted.error().message());
  EXPECT_NE(message.find("refuses to bootstrap"), std::string::npos) << message;
  EXPECT_NE(message.find("already joined"), std::string::npos) << message;
  EXPECT_NE(message.find("remove -> wipe -> add"), std::string::npos) << message;
  EXPECT_NE(message.find("--join"), std::string::npos) << message;
  // The refusal wrote nothing: the directory is still empty.
  EXPECT_TRUE(!fs::exists(dir) || fs::is_empty(dir));

  // The others keep their data and serve writes.
  EXPECT_EQ(missing_on_leader(cluster, before), 0u);
  const auto during = open_accounts(cluster, "during-", 10);
  ASSERT_EQ(during.size(), 10u);

  // The way back the message gives: remove, wipe, start with --join, add.
  ASSERT_NO_FATAL_FAILURE(remove_wipe_add(cluster, wiped));
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  // It holds everything: with the leader gone, it and the other elect a
  // leader that has every account.
  cluster.stop(*leader);
  ASSERT_TRUE(cluster.leader());
  EXPECT_EQ(missing_on_leader(cluster, before), 0u);
  EXPECT_EQ(missing_on_leader(cluster, during), 0u);
}

// The guard does not stop a new cluster from forming: every member empty,
// all started at once, each asking the others while they start.
TEST(DataDirRules, ANewClusterStillFormsWhenEveryMemberStartsAtOnce) {
  LocalCluster<bank::State> cluster(3, register_bank);
  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  for (std::size_t i = 0; i < 3; ++i) fs::remove_all(cluster.options(i).data_dir);
  std::vector<catga::Result<void>> started(3, catga::Result<void>{});
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 3; ++i) threads.emplace_back([&, i] { started[i] = cluster.try_start(i); });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < 3; ++i) ASSERT_THAT(started[i], IsOk()) << "node " << i + 1;
  ASSERT_TRUE(cluster.leader());
  const auto ids = open_accounts(cluster, "fresh-", 5);
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(missing_on_leader(cluster, ids), 0u);
}

// Issue 13, item 1: every member down, one voter's disk wiped. Started
// without --join it used to bootstrap after one election timeout of silence
// — a second history beside the committed one. Silence now means refuse
// (after asking for a while), naming --new-cluster, and writing nothing; the
// other two come back with everything, and then tell it that it joined.
TEST(DataDirRules, AWipedVoterInAWholeClusterOutageRefusesToBootstrap) {
  LocalCluster<bank::State> cluster(3, register_bank,
                                    [](catga::ClusterOptions& o) { o.election_timeout = std::chrono::milliseconds(200); });
  ASSERT_TRUE(cluster.leader());
  const auto before = open_accounts(cluster, "before-", 10);
  ASSERT_EQ(before.size(), 10u);
  ASSERT_TRUE(every_member_announced(cluster));
  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  const fs::path dir = cluster.options(0).data_dir;
  fs::remove_all(dir);

  auto alone = cluster.try_start(0);
  ASSERT_FALSE(alone) << "node 1 bootstrapped on its wiped data directory while its peers were down";
  EXPECT_EQ(alone.error().code(), catga::Code::failed_precondition);
  const std::string message(alone.error().message());
  EXPECT_NE(message.find("0 of 2 peers answered"), std::string::npos) << message;
  EXPECT_NE(message.find("--new-cluster"), std::string::npos) << message;
  EXPECT_NE(message.find("remove -> wipe -> add"), std::string::npos) << message;
  EXPECT_TRUE(!fs::exists(dir) || fs::is_empty(dir));

  cluster.start(1);
  cluster.start(2);
  ASSERT_TRUE(cluster.leader());
  EXPECT_EQ(missing_on_leader(cluster, before), 0u);
  auto again = cluster.try_start(0);
  ASSERT_FALSE(again);
  EXPECT_NE(std::string(again.error().message()).find("already joined"), std::string::npos) << again.error();
}

// Members of a new cluster started one at a time: the first waits in its
// guard, answering; each later one finds the earlier ones (waiting, or
// bootstrapped and leading) and every one bootstraps without --new-cluster.
TEST(DataDirRules, ANewClusterFormsWhenMembersStartOneByOneWithoutTheFlag) {
  LocalCluster<bank::State> cluster(3, register_bank);
  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  for (std::size_t i = 0; i < 3; ++i) fs::remove_all(cluster.options(i).data_dir);
  std::vector<catga::Result<void>> started(3, catga::Result<void>{});
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { started[i] = cluster.try_start(i); });
    // The next starts once this one is waiting (its guard listens).
    const std::string& peer = cluster.member(i).peer_address;
    ASSERT_TRUE(wait_for([&] { return !testsupport::port_is_free(std::stoi(peer.substr(peer.rfind(':') + 1))); }));
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < 3; ++i) ASSERT_THAT(started[i], IsOk()) << "node " << i + 1;
  ASSERT_TRUE(cluster.leader());
  EXPECT_EQ(open_accounts(cluster, "fresh-", 3).size(), 3u);
}

// With --new-cluster a member started alone bootstraps after one election
// timeout of silence, and so does the next; the last, without the flag,
// finds a leader that never heard of it and bootstraps too.
TEST(DataDirRules, WithNewClusterAMemberStartedAloneBootstraps) {
  LocalCluster<bank::State> cluster(3, register_bank);
  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  for (std::size_t i = 0; i < 3; ++i) fs::remove_all(cluster.options(i).data_dir);
  ASSERT_THAT(cluster.try_start(0, [](catga::ClusterOptions& o) { o.new_cluster = true; }), IsOk());
  EXPECT_FALSE(cluster.leader(std::chrono::milliseconds(500)));  // one voter of three cannot elect
  ASSERT_THAT(cluster.try_start(1, [](catga::ClusterOptions& o) { o.new_cluster = true; }), IsOk());
  ASSERT_TRUE(cluster.leader());
  ASSERT_THAT(cluster.try_start(2), IsOk());
  EXPECT_EQ(open_accounts(cluster, "fresh-", 3).size(), 3u);
}
