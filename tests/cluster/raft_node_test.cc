// Real RaftNodes on 127.0.0.1 (raft_node_fixture.hpp): replication from
// many threads, status and leadership, restarts, the address book, and
// stopping. Membership changes: raft_node_membership_test.cc.
#include "raft_node_fixture.hpp"

namespace catga::internal {
namespace {

using namespace raft_node_test;

TEST(RaftNode, ThreeNodesReplicateTenThousandRecordsFromManyThreads) {
  Cluster c(3);
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value()) << "no leader became ready";
  const unsigned l = *leader;

  EXPECT_EQ(c.propose_many(l, 10000, 4, "rec-"), 10000);
  ASSERT_TRUE(c.wait_all_applied(10000));
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(c.machine(i).digest(), c.machine(l).digest()) << "node " << i + 1;
    EXPECT_EQ(c.machine(i).order_violations(), 0);
    EXPECT_EQ(c.machine(i).bad_info(), 0);
  }

  // The leader hands back the state machine's result for each record.
  auto one = c.propose_sync(l, "hello");
  ASSERT_TRUE(one.has_value()) << describe(one.error());
  EXPECT_EQ(one->result, "ok:hello");
  EXPECT_GT(one->index, 0u);

  // A follower refuses, naming the leader and its address.
  const unsigned f = (l + 1) % 3;
  auto refused = c.propose_sync(f, "nope");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Code::unavailable);
  const std::string expected =
      "leader is " + std::to_string(c.member(l).id) + " at " + c.member(l).address;
  EXPECT_NE(refused.error().message().find(expected), std::string::npos) << refused.error().message();

  // Barrier on the leader; unavailable on a follower.
  std::promise<Result<std::uint64_t>> bp;
  c.node(l).barrier([&](Result<std::uint64_t> r) { bp.set_value(std::move(r)); });
  auto b = bp.get_future().get();
  ASSERT_TRUE(b.has_value()) << describe(b.error());
  EXPECT_GE(*b, one->index);
  std::promise<Result<std::uint64_t>> fp;
  c.node(f).barrier([&](Result<std::uint64_t> r) { fp.set_value(std::move(r)); });
  auto fb = fp.get_future().get();
  ASSERT_FALSE(fb.has_value());
  EXPECT_EQ(fb.error().code(), Code::unavailable);
}

// A barrier answers Raft's read index: the commit index when it was issued,
// not the barrier's own index. A follower's linearizable read waits for the
// index it is given, and the barrier's AppendEntries already tells it that
// the commit index is committed — its own index only the leader's next
// message (a heartbeat) would tell.
TEST(RaftNode, ABarrierOnAReadyLeaderAnswersTheCommitIndexItWasIssuedAt) {
  Cluster c(3);
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value()) << "no leader became ready";
  const unsigned l = *leader;
  auto one = c.propose_sync(l, "hello");
  ASSERT_TRUE(one.has_value()) << describe(one.error());
  // Applied on the leader, so committed; nothing else is in flight.
  const std::uint64_t commit = c.node(l).status().commit_index;
  ASSERT_GE(commit, one->index);
  std::promise<Result<std::uint64_t>> bp;
  c.node(l).barrier([&](Result<std::uint64_t> r) { bp.set_value(std::move(r)); });
  auto b = bp.get_future().get();
  ASSERT_TRUE(b.has_value()) << describe(b.error());
  EXPECT_EQ(*b, commit);
  // The barrier itself is an entry after it.
  EXPECT_TRUE(wait_until([&] { return c.node(l).status().commit_index > commit; }, 30s));
}

// An entry carrying more than 65,536 records gave two session-opening
// records 65,536 positions apart the same session id. The leader now packs
// at most kMaxRecordsPerEntry records per entry.
TEST(RaftNode, LeaderPacksAtMost65536RecordsPerEntry) {
  Cluster c(1, [](ClusterOptions& o) { o.max_entry_bytes = 4u << 20; });
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value()) << "no leader became ready";
  const std::size_t n = catga::internal::kMaxRecordsPerEntry + 5000;
  std::atomic<std::size_t> ok{0};
  std::vector<RaftNode::Proposal> proposals;
  proposals.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    proposals.push_back({"r", [&ok](Result<Applied> r) {
                           if (r) ok.fetch_add(1);
                         }});
  }
  c.node(*leader).propose(std::move(proposals));  // one wake-up: they would all fit one 4 MiB entry
  ASSERT_TRUE(c.wait_all_applied(n));
  // Completions run after the apply that counts the records: wait for them too.
  EXPECT_TRUE(wait_until([&] { return ok.load() == n; })) << ok.load() << " of " << n << " completed ok";
  EXPECT_EQ(c.machine(*leader).max_position(), catga::internal::kMaxRecordsPerEntry - 1);
  EXPECT_EQ(c.machine(*leader).order_violations(), 0);
}

TEST(RaftNode, StatusAndLeadershipCallbacks) {
  Cluster c(3);
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned l = *leader;
  ASSERT_TRUE(c.propose_sync(l, "x").has_value());
  ASSERT_TRUE(c.wait_all_applied(1));
  ASSERT_TRUE(wait_until([&] {
    for (unsigned i = 0; i < 3; ++i)
      if (c.node(i).status().leader_id != c.member(l).id) return false;
    return true;
  }));

  const NodeStatus ls = c.node(l).status();
  EXPECT_EQ(ls.id, c.member(l).id);
  EXPECT_EQ(ls.address, c.member(l).address);
  EXPECT_EQ(ls.role, NodeRole::leader);
  EXPECT_TRUE(ls.ready);
  EXPECT_GT(ls.term, 0u);
  EXPECT_EQ(ls.leader_id, c.member(l).id);
  EXPECT_EQ(ls.leader_address, c.member(l).address);
  EXPECT_GE(ls.commit_index, 2u);
  EXPECT_GE(ls.applied_index, 2u);
  EXPECT_TRUE(ls.failure.empty());
  ASSERT_EQ(ls.members.size(), 3u);
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(ls.members[i].member.id, c.member(i).id);
    EXPECT_EQ(ls.members[i].member.address, c.member(i).address);
    EXPECT_EQ(ls.members[i].member.role, MemberRole::voter);
  }
  for (unsigned i = 0; i < 3; ++i) {
    if (i == l) continue;
    const NodeStatus fs = c.node(i).status();
    EXPECT_EQ(fs.role, NodeRole::follower);
    EXPECT_FALSE(fs.ready);
    EXPECT_EQ(fs.term, ls.term);
    EXPECT_EQ(fs.leader_address, c.member(l).address);
    EXPECT_TRUE(wait_until([&] { return c.node(i).status().applied_index >= 2; }));
    EXPECT_TRUE(c.observed(i).saw_role(NodeRole::follower));
    EXPECT_TRUE(c.observed(i).saw_leader(c.member(l).id));
  }
  EXPECT_TRUE(c.observed(l).saw_role(NodeRole::leader));

  // Leadership transfer: the old leader steps down, another becomes ready.
  std::promise<Result<void>> tp;
  c.node(l).transfer_leadership(0, [&](Result<void> r) { tp.set_value(std::move(r)); });
  auto t = tp.get_future().get();
  ASSERT_TRUE(t.has_value()) << describe(t.error());
  auto next = c.ready_leader();
  ASSERT_TRUE(next.has_value());
  EXPECT_NE(*next, l);
  EXPECT_TRUE(wait_until([&] { return c.observed(l).saw_role(NodeRole::follower); }));
}

TEST(RaftNode, KilledLeaderIsReplacedAndCatchesUpAfterRestart) {
  Cluster c(3);
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  const unsigned old = *leader;
  EXPECT_EQ(c.propose_many(old, 500, 2, "before-"), 500);
  ASSERT_TRUE(c.wait_all_applied(500));

  c.stop(old);
  auto next = c.ready_leader();
  ASSERT_TRUE(next.has_value()) << "no new leader";
  ASSERT_NE(*next, old);
  EXPECT_EQ(c.propose_many(*next, 500, 2, "after-"), 500);

  auto r = c.start(old);
  ASSERT_TRUE(r.has_value()) << describe(r.error());
  ASSERT_TRUE(c.wait_all_applied(1000));
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(*next).digest());
}


TEST(RaftNode, RestartingEveryNodeFromDiskRestoresIdenticalState) {
  Cluster c(3);
  ASSERT_TRUE(start_with_records(c, 2000, "durable-"));
  const std::uint64_t digest = c.machine(0).digest();
  for (unsigned i = 0; i < 3; ++i) c.stop(i);

  c.start_all();  // fresh state machines: everything comes from disk
  ASSERT_TRUE(c.ready_leader().has_value());
  ASSERT_TRUE(c.wait_all_applied(2000));
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(c.machine(i).count(), 2000u) << "applied twice or lost";
    EXPECT_EQ(c.machine(i).digest(), digest);
  }
}

// ---- the address book is local --------------------------------------------

// Every node moves to a new port while the cluster is down: the stored
// configurations still name the old ports, where nothing listens any more.
// The nodes restart, listen at their new addresses and reach each other
// through the addresses of their options.
TEST(RaftNode, EveryNodeMovedToANewAddressRestartsAndReachesItsPeersThroughItsOptions) {
  Cluster c(3);
  ASSERT_TRUE(start_with_records(c, 200, "before-move-"));
  std::vector<std::string> old;
  for (unsigned i = 0; i < 3; ++i) {
    old.push_back(c.member(i).address);
    c.stop(i);
  }
  for (unsigned i = 0; i < 3; ++i) c.move(i);
  c.start_all();
  auto next = c.ready_leader();
  ASSERT_TRUE(next.has_value()) << "the moved nodes did not reach each other";
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(c.node(i).status().address, c.member(i).address);
    EXPECT_NE(c.member(i).address, old[i]);
  }
  EXPECT_EQ(c.propose_many(*next, 200, 2, "after-move-"), 200);
  ASSERT_TRUE(c.wait_all_applied(400));
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(*next).digest());
}

// Node 1 is the ready leader: leadership is moved to it if another node won.
void make_node_1_lead(Cluster& c) {
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  if (*leader == 0) return;
  auto moved = wait_void([&](auto done) { c.node(*leader).transfer_leadership(1, std::move(done)); });
  ASSERT_TRUE(moved.has_value()) << describe(moved.error());
  ASSERT_TRUE(wait_until([&] { return c.node(0).status().role == NodeRole::leader && c.node(0).status().ready; }));
}

// The chaos harness's shape (issue 13 item 9): node 1 reaches node 3 through
// a proxy, so node 1's configuration names node 3 by the proxy's address.
// Node 3 installs a snapshot from leader 1 and thereby stores node 1's view,
// in which node 3 has the proxy's address: it used to refuse every restart.
// It restarts, listens at its own address, and node 1 keeps dialing the proxy.
TEST(RaftNode, SnapshotFromALeaderWithAnotherAddressBookDoesNotStopARestart) {
  testsupport::BlackholeProxy proxy;  // forwards; never blackholed here
  Cluster c(3, [&proxy](ClusterOptions& o) {
    o.snapshot_threshold = 64;
    o.snapshot_trailing = 16;
    o.max_entry_bytes = 64;  // one small record per entry: many entries
    if (o.node_id == 1) o.members[2].address = proxy.address();
  });
  proxy.set_target(c.member(2).address);
  c.start_all();
  ASSERT_NO_FATAL_FAILURE(make_node_1_lead(c));
  c.stop(2);
  EXPECT_EQ(c.propose_many(0, 400, 4, "book-record-"), 400);
  ASSERT_TRUE(wait_until([&] { return c.node(0).status().last_snapshot_index >= 200; }));

  const std::size_t dialed_before = proxy.accepted();
  ASSERT_TRUE(c.start(2).has_value());
  ASSERT_TRUE(c.wait_all_applied(400));
  ASSERT_GE(c.machine(2).restores(), 1) << "node 3 caught up without a snapshot";
  EXPECT_GT(proxy.accepted(), dialed_before) << "node 1 did not dial node 3 at the address of its options";

  c.stop(2);
  auto again = c.start(2);
  ASSERT_TRUE(again.has_value()) << describe(again.error());
  EXPECT_EQ(c.node(2).status().address, c.member(2).address);
  // It stores node 1's view of the addresses (the snapshot's configuration).
  ASSERT_TRUE(wait_until([&] { return c.node(2).status().members.size() == 3; }));
  EXPECT_EQ(c.node(2).status().members[2].member.address, proxy.address());
  EXPECT_EQ(c.propose_many(0, 100, 2, "after-restart-"), 100);
  ASSERT_TRUE(c.wait_all_applied(500));
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(0).digest());
}

// Chaos seed 559162531: a follower took no message from the leader for four
// minutes, and stayed in its old term. With pre-vote, a follower the leader's
// messages no longer reach asks for pre-votes in its own term + 1, which its
// peers refuse (they have a leader) by answering that same term: it never
// learns of a newer term, and nothing tells the leader that its connection
// to the follower delivers nothing while TCP reports no error. Here node 1's
// connection to node 3 goes silent the way that link did (bytes taken,
// nothing delivered, nothing closed); a new connection would get through.
void silent_link_from_the_leader_heals(bool authenticated) {
  testsupport::BlackholeProxy proxy;  // node 1 -> node 3
  Cluster c(3, [&proxy, authenticated](ClusterOptions& o) {
    if (!authenticated) o.peer_secret.clear();  // the stock TCP transport, as catga-orders without a secret
    if (o.node_id == 1) o.members[2].address = proxy.address();
  });
  proxy.set_target(c.member(2).address);
  c.start_all();
  ASSERT_NO_FATAL_FAILURE(make_node_1_lead(c));
  EXPECT_EQ(c.propose_many(0, 100, 2, "before-"), 100);
  ASSERT_TRUE(c.wait_all_applied(100));

  proxy.silence_current();
  EXPECT_EQ(c.propose_many(0, 100, 2, "after-"), 100);  // nodes 1 and 2 commit
  ASSERT_TRUE(c.wait_all_applied(200)) << "node 3 applied " << c.node(2).status().applied_index << " in term "
                                       << c.node(2).status().term << " (leader's term "
                                       << c.node(0).status().term << ")";
  EXPECT_EQ(c.node(2).status().term, c.node(0).status().term);
  EXPECT_EQ(c.node(2).status().leader_id, 1u);
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(0).digest());
}

TEST(RaftNode, AFollowerBehindASilentLinkFromTheLeaderCatchesUp) { silent_link_from_the_leader_heals(false); }

TEST(RaftNode, AFollowerBehindASilentAuthenticatedLinkFromTheLeaderCatchesUp) {
  silent_link_from_the_leader_heals(true);
}

TEST(RaftNode, StopCompletesEveryPendingProposalExactlyOnce) {
  Cluster c(3);
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  std::atomic<int> ok_count{0}, unavailable{0}, unknown{0}, other{0};
  constexpr int kN = 5000;
  for (int i = 0; i < kN; ++i) {
    c.node(*leader).propose("p" + std::to_string(i), [&](Result<Applied> r) {
      if (r) ++ok_count;
      else if (r.error().code() == Code::unavailable) ++unavailable;
      else if (r.error().code() == Code::deadline_exceeded) ++unknown;
      else ++other;
    });
  }
  c.stop(*leader);
  EXPECT_EQ(ok_count + unavailable + unknown + other, kN);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace catga::internal
