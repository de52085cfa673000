// Online backups, restores into a new cluster, forced recovery of a survivor
// after losing a majority (docs/operations.md, "Backup and restore" and
// "Losing the majority"): real Applications over Raft nodes on 127.0.0.1.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "catga/backup.hpp"
#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using namespace catga::testing;
using testsupport::free_port;
using testsupport::LocalCluster;
using testsupport::TempDir;
using testsupport::wait_for;
namespace fs = std::filesystem;

namespace {

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

catga::Result<std::unique_ptr<catga::Application>> bank_app(catga::ClusterOptions o) {
  catga::ApplicationBuilder<bank::State> b;
  bank::register_handlers(b);
  b.cluster(std::move(o));
  return b.build();
}

// A member on fresh loopback ports (Raft and peer channel).
catga::Member fresh_member(std::uint64_t id) {
  const int raft = free_port();
  int peer = free_port();
  while (peer == raft) peer = free_port();
  return {id, "127.0.0.1:" + std::to_string(raft), catga::MemberRole::voter, "127.0.0.1:" + std::to_string(peer)};
}

catga::ClusterOptions options_for(const catga::Member& self, std::vector<catga::Member> members, fs::path dir,
                                  std::string cluster_id) {
  catga::ClusterOptions o;
  o.node_id = self.id;
  o.members = std::move(members);
  o.data_dir = std::move(dir);
  o.cluster_id = std::move(cluster_id);
  o.election_timeout = std::chrono::milliseconds(500);
  o.heartbeat_interval = std::chrono::milliseconds(50);
  o.peer_secret = testsupport::kClusterSecret;  // as LocalCluster's members: the survivor below was one
  return o;
}

bool ready_leader(catga::Application& app) {
  return wait_for([&] {
    auto s = app.status();
    return s.role == catga::NodeRole::leader && s.ready;
  });
}

std::vector<std::uint64_t> open_accounts(catga::Application& app, const std::string& prefix, int n) {
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < n; ++i) {
    auto r = app.send(bank::Open{.owner = prefix + std::to_string(i)});
    if (r) ids.push_back(r->id);
  }
  return ids;
}

std::size_t present(catga::Application& app, const std::vector<std::uint64_t>& ids,
                    catga::Consistency consistency = catga::Consistency::linearizable) {
  std::size_t n = 0;
  for (std::uint64_t id : ids) {
    if (app.send(bank::GetAccount{.account = id}, {.consistency = consistency})) ++n;
  }
  return n;
}

// Adds `member` on `leader` (retried while an earlier change is still running).
catga::Result<void> add(catga::Application& leader, const catga::Member& member) {
  catga::Result<void> r = catga::Error{catga::Code::unavailable, "not tried"};
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = leader.add_member(member);
    if (r || r.error().code() != catga::Code::failed_precondition) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return r;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// A backup taken from a running 3-member cluster restores into a NEW
// one-member cluster (new cluster id) holding exactly the state at the
// backup's index, which then grows by add_member.
TEST(Backup, OnlineBackupRestoresIntoANewClusterThatGrows) {
  TempDir files;
  std::vector<std::uint64_t> backed_up, later;
  const fs::path file = files.path() / "bank.backup";
  catga::BackupInfo taken;
  {
    LocalCluster<bank::State> cluster(3, register_bank);
    auto leader = cluster.leader();
    ASSERT_TRUE(leader);
    backed_up = open_accounts(cluster.app(*leader), "kept-", 30);
    ASSERT_EQ(backed_up.size(), 30u);
    // A follower does not take backups: it names the leader.
    const std::size_t follower = (*leader + 1) % 3;
    auto on_follower = cluster.app(follower).backup(files.path() / "follower.backup");
    ASSERT_FALSE(on_follower);
    EXPECT_EQ(on_follower.error().code(), catga::Code::unavailable) << on_follower.error().to_string();

    auto info = cluster.app(*leader).backup(file);
    ASSERT_THAT(info, IsOk());
    taken = *info;
    EXPECT_EQ(taken.cluster_id, "catga");
    EXPECT_EQ(taken.node_id, *leader + 1);
    EXPECT_GT(taken.index, 0u);
    EXPECT_GT(taken.term, 0u);
    ASSERT_EQ(taken.members.size(), 3u);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(taken.members[i].address, cluster.member(i).address);
      EXPECT_EQ(taken.members[i].peer_address, cluster.member(i).peer_address);  // given explicitly: kept
    }
    later = open_accounts(cluster.app(*leader), "later-", 5);  // after the backup: not in it
    ASSERT_EQ(later.size(), 5u);
  }
  auto read = catga::read_backup_file(file);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->index, taken.index);
  EXPECT_EQ(read->term, taken.term);
  EXPECT_EQ(read->file_bytes, fs::file_size(file));
  EXPECT_EQ(read->members, taken.members);

  // Disaster recovery: a new cluster from the backup.
  const catga::Member first = fresh_member(1);
  auto o1 = options_for(first, {first}, files.path() / "new1", "catga-restored");
  fs::create_directories(o1.data_dir);  // an empty directory (e.g. a mount point) is fine
  auto restored = catga::restore_backup(file, o1);
  ASSERT_THAT(restored, IsOk());
  EXPECT_EQ(restored->index, taken.index);
  auto app1 = bank_app(o1);
  ASSERT_THAT(app1, IsOk());
  ASSERT_TRUE(ready_leader(**app1));
  ASSERT_EQ((*app1)->status().members.size(), 1u);
  // The new configuration names the member with the peer address it was
  // given: members added later dial it there.
  EXPECT_EQ((*app1)->status().members[0].member, first);
  // libraft makes a lone voter leader without a new term: it goes on in the backup's.
  EXPECT_GE((*app1)->status().term, taken.term);
  EXPECT_EQ(present(**app1, backed_up), backed_up.size());
  EXPECT_EQ(present(**app1, later), 0u);
  // It takes new writes; their ids continue past the restored ones.
  auto more = open_accounts(**app1, "new-", 5);
  ASSERT_EQ(more.size(), 5u);
  EXPECT_TRUE(std::set<std::uint64_t>(backed_up.begin(), backed_up.end()).count(more.front()) == 0);

  // Grow: a second member starts empty with join and is added.
  const catga::Member second = fresh_member(2);
  auto o2 = options_for(second, {first, second}, files.path() / "new2", "catga-restored");
  o2.join = true;
  auto app2 = bank_app(o2);
  ASSERT_THAT(app2, IsOk());
  ASSERT_THAT(add(**app1, second), IsOk());
  const std::uint64_t commit = (*app1)->status().commit_index;
  ASSERT_TRUE(wait_for([&] { return (*app2)->status().applied_index >= commit; }));
  EXPECT_EQ(present(**app2, backed_up, catga::Consistency::local), backed_up.size());
  EXPECT_EQ(present(**app2, more, catga::Consistency::local), more.size());
  EXPECT_EQ((*app1)->status().members.size(), 2u);
  for (const auto& m : (*app2)->status().members) {
    EXPECT_EQ(m.member.peer_address, (m.member.id == 1 ? first : second).peer_address) << "member " << m.member.id;
  }

  // Restarted, the restored node loads its directory as any other.
  app2->reset();
  app1->reset();
  auto again = bank_app(o1);
  ASSERT_THAT(again, IsOk());
}

TEST(Backup, RestoreRefusesTheOldClusterIdANonEmptyDirectoryAndACorruptFile) {
  TempDir files;
  const fs::path file = files.path() / "one.backup";
  const catga::Member self = fresh_member(1);
  {
    auto app = bank_app(options_for(self, {self}, files.path() / "source", "source"));
    ASSERT_THAT(app, IsOk());
    ASSERT_TRUE(ready_leader(**app));
    ASSERT_EQ(open_accounts(**app, "a", 3).size(), 3u);
    ASSERT_THAT((*app)->backup(file), IsOk());
  }
  const catga::Member target = fresh_member(1);
  // Same cluster id: a restore is a new cluster.
  auto same = catga::restore_backup(file, options_for(target, {target}, files.path() / "t1", "source"));
  ASSERT_FALSE(same);
  EXPECT_EQ(same.error().code(), catga::Code::failed_precondition);
  EXPECT_NE(same.error().message().find("NEW cluster"), std::string::npos) << same.error().message();
  // An interrupted restore's leftovers alone do not count; the restore redoes them.
  fs::create_directories(files.path() / "t0" / ".catga-restoring");
  std::ofstream(files.path() / "t0" / ".catga-restoring" / "half-written") << "x";
  auto redone = catga::restore_backup(file, options_for(target, {target}, files.path() / "t0", "fresh"));
  ASSERT_THAT(redone, IsOk());
  EXPECT_FALSE(fs::exists(files.path() / "t0" / ".catga-restoring"));
  // A directory that holds something.
  fs::create_directories(files.path() / "t2");
  std::ofstream(files.path() / "t2" / "something") << "x";
  auto busy = catga::restore_backup(file, options_for(target, {target}, files.path() / "t2", "fresh"));
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code(), catga::Code::failed_precondition);
  // Other members listed: the new cluster starts with one.
  const catga::Member other = fresh_member(2);
  auto many = catga::restore_backup(file, options_for(target, {target, other}, files.path() / "t3", "fresh"));
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code(), catga::Code::failed_precondition);
  EXPECT_FALSE(fs::exists(files.path() / "t3"));
  // One flipped byte anywhere: data_loss, nothing written.
  std::string bytes = read_file(file);
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(files.path() / "bad.backup", std::ios::binary) << bytes;
  auto corrupt = catga::restore_backup(files.path() / "bad.backup", options_for(target, {target}, files.path() / "t4", "fresh"));
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code(), catga::Code::data_loss) << corrupt.error().to_string();
  EXPECT_FALSE(fs::exists(files.path() / "t4"));
  // Truncated.
  std::ofstream(files.path() / "short.backup", std::ios::binary) << read_file(file).substr(0, 100);
  EXPECT_EQ(catga::read_backup_file(files.path() / "short.backup").error().code(), catga::Code::data_loss);
}

// Losing a majority for good: the survivor (the old leader, which has every
// acknowledged write) is forced into a one-member cluster with a new cluster
// id, keeps everything, refuses the old members' directories, and grows back
// to three members.
TEST(ForceNewCluster, SurvivorKeepsEveryAcknowledgedWriteAndGrowsBackToThree) {
  TempDir files;
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  const std::size_t survivor = *leader;
  const auto acknowledged = open_accounts(cluster.app(survivor), "acked-", 40);
  ASSERT_EQ(acknowledged.size(), 40u);
  // Two members are lost for good; the survivor cannot commit any more.
  for (std::size_t i = 0; i < 3; ++i) {
    if (i != survivor) cluster.stop(i);
  }
  cluster.stop(survivor);

  catga::ClusterOptions forced = cluster.options(survivor);
  forced.force_new_cluster = true;
  // The same cluster id is refused: the recovered cluster is a new one.
  auto same_id = bank_app(forced);
  ASSERT_FALSE(same_id);
  EXPECT_EQ(same_id.error().code(), catga::Code::failed_precondition);
  EXPECT_NE(same_id.error().message().find("new cluster id"), std::string::npos) << same_id.error().message();

  forced.cluster_id = "catga-recovered";
  auto app = bank_app(forced);
  ASSERT_THAT(app, IsOk());
  ASSERT_TRUE(ready_leader(**app));
  ASSERT_EQ((*app)->status().members.size(), 1u);
  EXPECT_EQ((*app)->status().members[0].member.peer_address, cluster.member(survivor).peer_address);
  EXPECT_EQ(present(**app, acknowledged), acknowledged.size());
  const auto after = open_accounts(**app, "after-", 5);
  ASSERT_EQ(after.size(), 5u);

  // A lost member's old directory cannot join the recovered cluster.
  const std::size_t lost = (survivor + 1) % 3;
  catga::ClusterOptions old_member = cluster.options(lost);
  old_member.cluster_id = "catga-recovered";
  auto refused = bank_app(old_member);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), catga::Code::failed_precondition);
  EXPECT_NE(refused.error().message().find("cluster 'catga'"), std::string::npos) << refused.error().message();

  // Grow back to three with empty members (new ids, new ports).
  const catga::Member self = cluster.member(survivor);
  std::vector<std::unique_ptr<catga::Application>> grown;
  std::vector<catga::Member> members{self};
  for (std::uint64_t id : {4, 5}) {
    const catga::Member m = fresh_member(id);
    members.push_back(m);
    auto o = options_for(m, members, files.path() / ("node" + std::to_string(id)), "catga-recovered");
    o.join = true;
    auto joined = bank_app(o);
    ASSERT_THAT(joined, IsOk());
    grown.push_back(std::move(*joined));
    ASSERT_THAT(add(**app, m), IsOk());
  }
  EXPECT_EQ((*app)->status().members.size(), 3u);
  const auto grown_writes = open_accounts(**app, "grown-", 5);
  ASSERT_EQ(grown_writes.size(), 5u);
  const std::uint64_t commit = (*app)->status().commit_index;
  for (auto& g : grown) {
    ASSERT_TRUE(wait_for([&] { return g->status().applied_index >= commit; }));
    EXPECT_EQ(present(*g, acknowledged, catga::Consistency::local), acknowledged.size());
    EXPECT_EQ(present(*g, grown_writes, catga::Consistency::local), grown_writes.size());
  }
  // The grown cluster survives the loss of the recovered node: a majority remains.
  app->reset();
  ASSERT_TRUE(wait_for([&] {
    for (auto& g : grown) {
      auto s = g->status();
      if (s.role == catga::NodeRole::leader && s.ready) return true;
    }
    return false;
  }));
  for (auto& g : grown) {
    if (g->status().role == catga::NodeRole::leader) {
      EXPECT_EQ(present(*g, acknowledged), acknowledged.size());
    }
  }
}
