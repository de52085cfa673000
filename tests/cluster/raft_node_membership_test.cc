// Real RaftNodes on 127.0.0.1 (raft_node_fixture.hpp): membership changes —
// add, promote and remove, an add repeated to resume a promotion, an add
// whose snapshot install outlasts a catch-up round, a leader that
// received a configuration entry inside a batch, and a snapshot taken while a
// restart applies an addition again.
#include "raft_node_fixture.hpp"

#include <map>

#include "cluster/data_dir.hpp"
#include "cluster/raft_c.h"

namespace catga::internal {
namespace {

using namespace raft_node_test;

TEST(RaftNode, MembershipAddPromoteAndRemove) {
  Cluster c(4, {}, /*initial=*/3);
  c.start_all(3);  // node 4 is not an initial member
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned l = *leader;
  EXPECT_EQ(c.propose_many(l, 300, 2, "m-"), 300);

  auto joined = c.start(3, JoinMode::join_existing);
  ASSERT_TRUE(joined.has_value()) << describe(joined.error());
  auto added = wait_void([&](auto done) { c.node(l).add_member(c.member(3), std::move(done)); });
  ASSERT_TRUE(added.has_value()) << describe(added.error());
  ASSERT_TRUE(c.wait_all_applied(300));
  EXPECT_EQ(c.machine(3).digest(), c.machine(l).digest());
  ASSERT_TRUE(wait_until([&] {
    auto st = c.node(l).status();
    return st.members.size() == 4 && st.members[3].member.role == MemberRole::voter;
  }));

  // The same add again is a retry that has nothing left to do; the same id at
  // another address, or as a lower role, is a conflict; an unknown member.
  auto again = wait_void([&](auto done) { c.node(l).add_member(c.member(3), std::move(done)); });
  EXPECT_TRUE(again.has_value()) << describe(again.error());
  auto elsewhere = c.member(3);
  elsewhere.address = "127.0.0.1:1";
  auto dup = wait_void([&](auto done) { c.node(l).add_member(elsewhere, std::move(done)); });
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code(), Code::already_exists) << describe(dup.error());
  auto lower = c.member(3);
  lower.role = MemberRole::spare;
  auto demote = wait_void([&](auto done) { c.node(l).add_member(lower, std::move(done)); });
  ASSERT_FALSE(demote.has_value());
  EXPECT_EQ(demote.error().code(), Code::already_exists) << describe(demote.error());
  auto missing = wait_void([&](auto done) { c.node(l).remove_member(42, std::move(done)); });
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::not_found) << describe(missing.error());
  // Not on a follower.
  auto on_follower = wait_void([&](auto done) { c.node((l + 1) % 3).remove_member(4, std::move(done)); });
  ASSERT_FALSE(on_follower.has_value());
  EXPECT_EQ(on_follower.error().code(), Code::unavailable);

  // Demote to standby, then remove.
  auto demoted = wait_void([&](auto done) { c.node(l).assign_role(4, MemberRole::standby, std::move(done)); });
  ASSERT_TRUE(demoted.has_value()) << describe(demoted.error());
  auto removed = wait_void([&](auto done) { c.node(l).remove_member(4, std::move(done)); });
  ASSERT_TRUE(removed.has_value()) << describe(removed.error());
  ASSERT_TRUE(wait_until([&] { return c.node(l).status().members.size() == 3; }));
  EXPECT_EQ(c.propose_many(l, 10, 1, "after-remove-"), 10);
}

// An add whose promotion did not finish (libraft's catch-up failed: the member
// stays a spare, which receives nothing) is resumed by the same add again —
// the retry an operator or a script makes after "catch-up of the new member
// failed". Seen in a chaos run: the retry answered already_exists, the member
// stayed a spare for good, and it never applied another entry.
TEST(RaftNode, RepeatedAddResumesAPromotionThatDidNotFinish) {
  Cluster c(4, {}, /*initial=*/3);
  c.start_all(3);
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned l = *leader;
  EXPECT_EQ(c.propose_many(l, 100, 2, "r-"), 100);
  auto joined = c.start(3, JoinMode::join_existing);
  ASSERT_TRUE(joined.has_value()) << describe(joined.error());

  // Where a failed catch-up leaves it: listed as a spare.
  auto spare = c.member(3);
  spare.role = MemberRole::spare;
  auto added = wait_void([&](auto done) { c.node(l).add_member(spare, std::move(done)); });
  ASSERT_TRUE(added.has_value()) << describe(added.error());
  EXPECT_EQ(c.propose_many(l, 50, 2, "s-"), 50);
  EXPECT_EQ(c.machine(3).count(), 0u) << "a spare receives no entries";

  auto resumed = wait_void([&](auto done) { c.node(l).add_member(c.member(3), std::move(done)); });
  ASSERT_TRUE(resumed.has_value()) << describe(resumed.error());
  ASSERT_TRUE(wait_until([&] {
    auto st = c.node(l).status();
    return st.members.size() == 4 && st.members[3].member.role == MemberRole::voter;
  }));
  ASSERT_TRUE(c.wait_all_applied(150));
  EXPECT_EQ(c.machine(3).digest(), c.machine(l).digest());
}

// A new member whose catch-up starts with a snapshot install that takes
// longer than libraft's default catch-up round (5 s) is still promoted: the
// round is as long as an install may take (libraft's install timeout). Before,
// every add of a member to a state whose install takes over 5 s failed with
// "catch-up of the new member failed" and left it a spare.
TEST(RaftNode, AddWhoseInstallOutlastsADefaultCatchUpRoundSucceeds) {
  Cluster c(4, small_snapshots, /*initial=*/3);
  c.start_all(3);
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned l = *leader;
  EXPECT_EQ(c.propose_many(l, 300, 2, "i-"), 300);
  // The premise: the leader's log no longer starts at 1 (a snapshot past the
  // 16 trailing entries was written), so node 4 can only start from a
  // snapshot. On a loaded machine the first snapshots may still be on their
  // way when the records are in.
  ASSERT_TRUE(wait_until([&] { return c.node(l).status().last_snapshot_index > 17; }))
      << "the leader took no snapshot";
  auto joined = c.start(3, JoinMode::join_existing);
  ASSERT_TRUE(joined.has_value()) << describe(joined.error());
  c.machine(3).set_restore_delay(std::chrono::milliseconds(7000));

  auto added = wait_void([&](auto done) { c.node(l).add_member(c.member(3), std::move(done)); });
  ASSERT_TRUE(added.has_value()) << describe(added.error());
  // Counted once its restore returned, which may be just after the add did.
  EXPECT_TRUE(wait_until([&] { return c.machine(3).restores() >= 1; })) << "node 4 caught up without a snapshot";
  ASSERT_TRUE(c.wait_all_applied(300));
  EXPECT_EQ(c.machine(3).digest(), c.machine(l).digest());
}

// A follower that receives a configuration entry behind other new entries of
// one AppendEntries message (it was down while the leader committed records,
// then a configuration change, then more) must, once leader, still make
// configuration changes. libraft 0.22.1 records such an entry as uncommitted
// at the message's first new index, never clears it when the entry applies,
// and as leader the node refused every change ("another configuration change
// is in progress") until it restarted. Seen in a chaos run (seed 1036358052):
// a member removed, the new leader refused to add it back for a minute.
TEST(RaftNode, LeaderThatReceivedAChangeInsideABatchCanChangeTheConfiguration) {
  Cluster c(4, {}, /*initial=*/3);
  c.start_all(3);
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned l = *leader;
  const unsigned f = (l + 1) % 3;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose_sync(l, "a" + std::to_string(i)).has_value());
  ASSERT_TRUE(c.wait_all_applied(3));

  // Down while the leader commits records, a configuration change (member 4
  // added as a spare: no process, no catch-up), and more records.
  c.stop(f);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose_sync(l, "b" + std::to_string(i)).has_value());
  auto spare = c.member(3);
  spare.role = MemberRole::spare;
  auto added = wait_void([&](auto done) { c.node(l).add_member(spare, std::move(done)); });
  ASSERT_TRUE(added.has_value()) << describe(added.error());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.propose_sync(l, "c" + std::to_string(i)).has_value());

  // Back: it receives the records and the change in one message, applies them.
  auto restarted = c.start(f);
  ASSERT_TRUE(restarted.has_value()) << describe(restarted.error());
  ASSERT_TRUE(c.wait_all_applied(9));

  // It becomes the leader and changes the configuration.
  ASSERT_TRUE(wait_until(
      [&] {
        if (c.node(f).status().role == NodeRole::leader && c.node(f).status().ready) return true;
        if (c.node(l).status().role == NodeRole::leader) {
          (void)wait_void([&](auto done) { c.node(l).transfer_leadership(f + 1, std::move(done)); });
        }
        return false;
      },
      60s))
      << "node " << f + 1 << " did not become the leader";
  Result<void> removed = Error(Code::deadline_exceeded, "not tried");
  ASSERT_TRUE(wait_until(
      [&] {
        removed = wait_void([&](auto done) { c.node(f).remove_member(4, std::move(done)); });
        if (removed || removed.error().code() != Code::failed_precondition) return true;
        std::this_thread::sleep_for(100ms);  // a new leader's first commit may still be due
        return false;
      },
      30s))
      << "every removal refused: " << describe(removed.error());
  ASSERT_TRUE(removed.has_value()) << describe(removed.error());
  ASSERT_TRUE(wait_until([&] { return c.node(f).status().members.size() == 3; }));
  EXPECT_TRUE(c.propose_sync(f, "d").has_value());
}

// The configuration of the newest snapshot in `dir` (its index 0 if none):
// member id -> role (CATGA_ROLE_*).
struct SnapshotConfiguration {
  std::uint64_t index = 0;
  std::uint64_t configuration_index = 0;
  std::map<std::uint64_t, int> roles;
};
SnapshotConfiguration newest_snapshot_configuration(const fs::path& dir) {
  SnapshotConfiguration out;
  const SnapshotFile snap = newest_snapshot(dir);
  if (snap.name.empty()) return out;
  std::ifstream in(dir / (snap.name + ".meta"), std::ios::binary);
  const std::string meta((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  char errmsg[256] = {0};
  auto each = [](void* ctx, std::uint64_t id, const char*, int role) {
    static_cast<SnapshotConfiguration*>(ctx)->roles[id] = role;
  };
  if (catga_raft_decode_snapshot_meta(meta.data(), meta.size(), &out.configuration_index, each, &out, errmsg,
                                      sizeof errmsg) != 0) {
    ADD_FAILURE() << snap.name << ": " << errmsg;
    return out;
  }
  out.index = snap.index;
  return out;
}

// A snapshot holds the configuration as of its index. libraft 0.22.1 records
// a configuration entry as committed one event after applying it, and takes
// a snapshot at the first check after an apply pass — which comes before
// that event when the pass applied two configuration entries: a node that
// restarts with a member's addition in its log (libraft restores the last
// configuration entry as uncommitted, the one before it as committed — the
// member a spare) applies both again in one pass, and a snapshot due then
// recorded the member as a spare. Restored from that snapshot once the log
// behind it is gone, the node lists the member as a spare, and as leader
// sends it nothing: the member, a voter in its own log, asks for votes
// forever and applies nothing more (chaos seed 559162531). Before the fix
// the snapshot listed node 4 as a spare, and so did node F after its second
// restart.
TEST(RaftNode, ASnapshotTakenWhileReapplyingAnAdditionListsTheNewMemberAsAVoter) {
  // No snapshot until node F restarts, then one as soon as 16 entries are
  // applied: the restart's first apply pass.
  std::atomic<std::uint64_t> threshold{1'000'000};
  Cluster c(
      4,
      [&threshold](ClusterOptions& o) {
        o.snapshot_threshold = threshold.load();
        o.snapshot_trailing = 4;
        o.snapshot_growth_percent = 0;
        o.max_entry_bytes = 64;
      },
      /*initial=*/3);
  c.start_all(3);
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned l = *leader;
  const unsigned f = (l + 1) % 3;
  EXPECT_EQ(c.propose_many(l, 40, 1, "before-"), 40);

  // Node 4 added as a voter: a spare first (one configuration entry), then
  // promoted (another).
  auto joined = c.start(3, JoinMode::join_existing);
  ASSERT_TRUE(joined.has_value()) << describe(joined.error());
  auto added = wait_void([&](auto done) { c.node(l).add_member(c.member(3), std::move(done)); });
  ASSERT_TRUE(added.has_value()) << describe(added.error());
  EXPECT_EQ(c.propose_many(l, 40, 1, "after-"), 40);
  ASSERT_TRUE(c.wait_all_applied(80));
  ASSERT_EQ(newest_snapshot(c.dir(f)).name, "") << "node " << f + 1 << " took a snapshot before its restart";

  // Node F restarts while the others commit more: it applies its whole log
  // again, both configuration entries included, and takes a snapshot.
  c.stop(f);
  EXPECT_EQ(c.propose_many(l, 40, 1, "while-down-"), 40);
  threshold = 16;
  auto restarted = c.start(f);
  ASSERT_TRUE(restarted.has_value()) << describe(restarted.error());
  ASSERT_TRUE(c.wait_all_applied(120));
  SnapshotConfiguration snap;
  ASSERT_TRUE(wait_until([&] {
    snap = newest_snapshot_configuration(c.dir(f));
    return snap.index > 0;
  }))
      << "node " << f + 1 << " took no snapshot after its restart";
  ASSERT_EQ(snap.roles.count(4), 1u) << "snapshot at " << snap.index << " does not list node 4";
  EXPECT_EQ(snap.roles[4], CATGA_ROLE_VOTER)
      << "the snapshot at " << snap.index << " (configuration of entry " << snap.configuration_index
      << ") lists node 4 as role " << snap.roles[4] << " (2: spare)";

  // Restarted from that snapshot (the log behind it compacted), then leader:
  // node 4 is a voter there and keeps applying.
  threshold = 1'000'000;
  c.stop(f);
  restarted = c.start(f);
  ASSERT_TRUE(restarted.has_value()) << describe(restarted.error());
  auto role_of_4 = [&] {
    for (const auto& m : c.node(f).status().members) {
      if (m.member.id == 4) return static_cast<int>(m.member.role);
    }
    return -1;
  };
  EXPECT_TRUE(wait_until([&] { return role_of_4() == static_cast<int>(MemberRole::voter); }, 10s))
      << "node " << f + 1 << "'s view of node 4: role " << role_of_4() << " (2: spare, -1: not a member)";
  ASSERT_TRUE(wait_until(
      [&] {
        if (c.node(f).status().role == NodeRole::leader && c.node(f).status().ready) return true;
        for (unsigned i = 0; i < 3; ++i) {
          if (i != f && c.node(i).status().role == NodeRole::leader) {
            (void)wait_void([&](auto done) { c.node(i).transfer_leadership(f + 1, std::move(done)); });
          }
        }
        return false;
      },
      60s))
      << "node " << f + 1 << " did not become the leader";
  EXPECT_EQ(c.propose_many(f, 10, 1, "under-f-"), 10);
  EXPECT_TRUE(c.wait_all_applied(130)) << "node 4 applied " << c.machine(3).count() << " of 130 under leader "
                                       << f + 1;
}

}  // namespace
}  // namespace catga::internal
