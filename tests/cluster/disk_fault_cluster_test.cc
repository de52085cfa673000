// Disk faults in a 3-node cluster of RaftNodes, one of them on the small
// disk (disk_fault_fixture.hpp): its disk fills, whether it leads or follows.
#include "disk_fault_fixture.hpp"

#include <iostream>
#include <optional>

namespace catga::internal::disk_fault_test {
namespace {

class Trio {
 public:
  explicit Trio(const fs::path& node1_dir) {
    for (unsigned i = 0; i < 3; ++i) {
      members_.push_back(Member{i + 1, "127.0.0.1:" + std::to_string(testing::free_port())});
      tmp_.push_back(std::make_unique<testing::TempDir>());
      dirs_.push_back(i == 0 ? node1_dir : tmp_.back()->path());
    }
    machines_.resize(3);
    nodes_.resize(3);
  }
  ~Trio() {
    for (auto& n : nodes_) n.reset();
  }
  Result<void> start(unsigned i) {
    ClusterOptions o;
    o.node_id = i + 1;
    o.members = members_;
    o.data_dir = dirs_[i];
    o.election_timeout = 500ms;
    o.heartbeat_interval = 50ms;
    machines_[i] = std::make_unique<RecordingMachine>();
    auto r = RaftNode::start(o, *machines_[i]);
    if (!r) return r.error();
    nodes_[i] = std::move(*r);
    return ok();
  }
  void stop(unsigned i) { nodes_[i].reset(); }
  std::optional<unsigned> leader() {
    std::optional<unsigned> found;
    wait_until([&] {
      for (unsigned i = 0; i < 3; ++i) {
        if (nodes_[i] && nodes_[i]->status().role == NodeRole::leader && nodes_[i]->status().ready) {
          found = i;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  // Makes node `want` the ready leader (or any node but `avoid`).
  bool lead_with(std::optional<unsigned> want, std::optional<unsigned> avoid) {
    return wait_until(
        [&] {
          auto l = leader();
          if (!l) return false;
          if ((!want || *l == *want) && (!avoid || *l != *avoid)) return true;
          std::promise<void> done;
          nodes_[*l]->transfer_leadership(want ? *want + 1 : 0, [&](Result<void>) { done.set_value(); });
          done.get_future().wait_for(10s);
          return false;
        },
        60s);
  }
  // Proposes on whichever node leads, retrying while there is none.
  Result<Applied> propose(const std::string& r) {
    Result<Applied> last = Error(Code::unavailable, "no leader");
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto l = leader();
      if (!l) continue;
      last = propose_sync(*nodes_[*l], r);
      if (last || last.error().code() != Code::unavailable) return last;
    }
    return last;
  }
  RaftNode& node(unsigned i) { return *nodes_[i]; }
  RecordingMachine& machine(unsigned i) { return *machines_[i]; }

 private:
  std::vector<Member> members_;
  std::vector<std::unique_ptr<testing::TempDir>> tmp_;
  std::vector<fs::path> dirs_;
  std::vector<std::unique_ptr<RecordingMachine>> machines_;
  std::vector<std::unique_ptr<RaftNode>> nodes_;
};

// One node's disk fills (a follower's, or the leader's): the other two are a
// majority with room, so the cluster keeps committing; the full node catches
// up once space is freed, and after a restart holds everything acknowledged.
void one_full_node_of_three(bool full_node_leads) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  Trio trio(disk->path() / "data");
  for (unsigned i = 0; i < 3; ++i) ASSERT_TRUE(trio.start(i).has_value());
  ASSERT_TRUE(full_node_leads ? trio.lead_with(0, std::nullopt) : trio.lead_with(std::nullopt, 0));
  Ledger ledger;
  for (int i = 0; i < 20; ++i) {
    auto r = trio.propose("before" + std::to_string(i));
    ASSERT_TRUE(r.has_value()) << describe(r.error());
    ledger.record("before" + std::to_string(i), r);
  }
  disk->fill(0);
  // More than node 1's disk can take.
  for (int i = 0; i < 3 * 1024 * 8 / 32 + 200; ++i) {
    const std::string r = big_record("full" + std::to_string(i));
    auto result = trio.propose(r);
    ledger.record(r, result);
    ASSERT_TRUE(result.has_value()) << "record " << i << ": " << describe(result.error());
  }
  const auto lagging = trio.machine(0).count();
  std::cerr << "node 1 (full disk" << (full_node_leads ? ", leader" : "") << ") applied " << lagging << " of "
            << ledger.acknowledged.size() << "; its role now " << to_string(trio.node(0).status().role) << "\n";
  EXPECT_EQ(trio.node(0).status().failure, "");
  disk->free_space();
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_TRUE(wait_until([&] { return trio.machine(i).count() >= ledger.acknowledged.size(); }, 60s))
        << "node " << i + 1 << " applied " << trio.machine(i).count();
    ledger.check(trio.machine(i).records(), "node " + std::to_string(i + 1));
  }
  // Node 1 from its own disk.
  trio.stop(0);
  ASSERT_TRUE(trio.start(0).has_value());
  ASSERT_TRUE(wait_until([&] { return trio.machine(0).count() >= ledger.acknowledged.size(); }, 60s));
  ledger.check(trio.machine(0).records(), "node 1 restarted");
}

TEST(DiskFault, FollowerWithFullDiskDoesNotStopTheCluster) { one_full_node_of_three(false); }

TEST(DiskFault, LeaderWithFullDiskCommitsOnTheFollowers) { one_full_node_of_three(true); }

}  // namespace
}  // namespace catga::internal::disk_fault_test
