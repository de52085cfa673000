// Deterministic tests of the RaftNode glue (packing, apply dispatch, results,
// snapshots, leadership loss) on libraft's in-memory fixture: virtual clock,
// no sockets, no threads. The test thread plays the loop thread.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/entry_format.hpp"
#include "cluster/raft_node.hpp"
#include "cluster_test_support.hpp"
#include "fixture_harness.h"

namespace catga::internal {
namespace {

using testing::DigestMachine;

struct FixtureCluster {
  explicit FixtureCluster(unsigned n, std::size_t max_entry_bytes = 1 << 20, unsigned in_flight = 4,
                          unsigned threshold = 1000000, unsigned trailing = 100,
                          const std::function<void(ClusterOptions&)>& tweak = {}) {
    std::vector<void*> fsms;
    for (unsigned i = 0; i < n; ++i) {
      machines.push_back(std::make_unique<DigestMachine>());
      ClusterOptions o;
      o.node_id = i + 1;
      o.max_entry_bytes = max_entry_bytes;
      o.max_entries_in_flight = in_flight;
      o.snapshot_threshold = threshold;  // the node sets libraft's knobs from its options
      o.snapshot_trailing = trailing;
      if (tweak) tweak(o);
      nodes.push_back(RaftNode::create_attached_for_test(o, *machines.back()));
      fsms.push_back(nodes.back()->fsm_for_test());
    }
    fixture = catga_fixture_new(fsms.data(), n, threshold, trailing);
    for (unsigned i = 0; i < n; ++i) nodes[i]->attach_for_test(catga_fixture_raft(fixture, i));
    poll();
  }
  ~FixtureCluster() {
    catga_fixture_close(fixture);  // before the nodes: pending requests complete into them
    nodes.clear();
  }
  void poll() {
    for (auto& n : nodes) n->poll_for_test();
  }
  // Steps and polls until pred() or the step budget runs out.
  bool step_until(const std::function<bool()>& pred, int max_steps = 200000) {
    for (int i = 0; i < max_steps; ++i) {
      if (pred()) return true;
      catga_fixture_step(fixture);
      poll();
    }
    return pred();
  }
  // Elects node 1 and steps until it is ready.
  bool elect_node_1() {
    catga_fixture_elect(fixture, 0);
    poll();
    return step_until([&] { return nodes[0]->status().ready; });
  }
  // Proposes n records "<prefix><proposed so far>" on node 1; `completed`
  // and `failed` count their completions.
  void propose_on_node_1(int n, const std::string& prefix) {
    for (int i = 0; i < n; ++i) {
      nodes[0]->propose(prefix + std::to_string(proposed++), [this](Result<Applied> r) {
        ++completed;
        if (!r) ++failed;
      });
    }
    poll();
  }
  int proposed = 0;
  int completed = 0;
  int failed = 0;
  catga_fixture* fixture = nullptr;
  std::vector<std::unique_ptr<DigestMachine>> machines;
  std::vector<std::unique_ptr<RaftNode>> nodes;
};

struct Outcome {
  std::optional<Result<Applied>> result;
};

TEST(RaftFixture, AppliesRecordsInProposalOrderOnEveryNode) {
  FixtureCluster c(3, /*max_entry_bytes=*/256, /*in_flight=*/3);
  catga_fixture_elect(c.fixture, 0);
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return c.nodes[0]->status().ready; })) << "leader never became ready";

  constexpr int kRecords = 200;
  std::vector<Outcome> outcomes(kRecords);
  for (int i = 0; i < kRecords; ++i) {
    c.nodes[0]->propose("record-" + std::to_string(i), [&outcomes, i](Result<Applied> r) {
      outcomes[i].result = std::move(r);
    });
  }
  c.poll();
  ASSERT_TRUE(c.step_until([&] {
    for (auto& o : outcomes)
      if (!o.result) return false;
    return true;
  }));
  std::uint64_t last_index = 0;
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE(outcomes[i].result->has_value()) << testing::describe(outcomes[i].result->error());
    EXPECT_EQ((*outcomes[i].result)->result, "ok:record-" + std::to_string(i));
    EXPECT_GE((*outcomes[i].result)->index, last_index);
    last_index = (*outcomes[i].result)->index;
  }
  // Group commit packed several records per entry (256-byte entries).
  EXPECT_LT(last_index, static_cast<std::uint64_t>(kRecords));
  ASSERT_TRUE(c.step_until([&] {
    return c.machines[1]->count() == kRecords && c.machines[2]->count() == kRecords;
  }));
  for (auto& m : c.machines) {
    EXPECT_EQ(m->count(), static_cast<std::uint64_t>(kRecords));
    EXPECT_EQ(m->digest(), c.machines[0]->digest());
    EXPECT_EQ(m->order_violations(), 0);
    EXPECT_EQ(m->bad_info(), 0);
  }

  // A barrier confirms commit up to at least the last record's entry: it
  // answers the read index, the commit index when it was issued.
  std::optional<Result<std::uint64_t>> barrier;
  c.nodes[0]->barrier([&](Result<std::uint64_t> r) { barrier = std::move(r); });
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return barrier.has_value(); }));
  ASSERT_TRUE(barrier->has_value());
  EXPECT_GE(**barrier, last_index);

  // Followers refuse, naming the leader.
  std::optional<Result<Applied>> refused;
  c.nodes[1]->propose("x", [&](Result<Applied> r) { refused = std::move(r); });
  c.poll();
  ASSERT_TRUE(refused.has_value());
  ASSERT_FALSE(refused->has_value());
  EXPECT_EQ(refused->error().code(), Code::unavailable);
  EXPECT_NE(refused->error().message().find("leader is 1"), std::string::npos) << refused->error().message();
}

TEST(RaftFixture, RecordLargerThanAnEntryIsRejected) {
  FixtureCluster c(1, /*max_entry_bytes=*/64);  // a single voter elects itself at start
  ASSERT_TRUE(c.step_until([&] { return c.nodes[0]->status().ready; }));
  std::optional<Result<Applied>> big, small;
  c.nodes[0]->propose(std::string(100, 'x'), [&](Result<Applied> r) { big = std::move(r); });
  c.nodes[0]->propose("fits", [&](Result<Applied> r) { small = std::move(r); });
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return big.has_value() && small.has_value(); }));
  ASSERT_FALSE(big->has_value());
  EXPECT_EQ(big->error().code(), Code::invalid_argument);
  ASSERT_TRUE(small->has_value());
  EXPECT_EQ((*small)->result, "ok:fits");
}

TEST(RaftFixture, LeadershipLostMidBatchIsOutcomeUnknownNeverSuccess) {
  FixtureCluster c(3, /*max_entry_bytes=*/128, /*in_flight=*/8);
  catga_fixture_elect(c.fixture, 0);
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return c.nodes[0]->status().ready; }));

  constexpr int kRecords = 20;
  std::vector<Outcome> outcomes(kRecords);
  for (int i = 0; i < kRecords; ++i) {
    c.nodes[0]->propose("r" + std::to_string(i), [&outcomes, i](Result<Applied> r) { outcomes[i].result = std::move(r); });
  }
  c.poll();  // appended, not committed
  catga_fixture_depose(c.fixture);  // followers' acks are dropped until the leader steps down
  c.poll();
  int unknown = 0;
  for (auto& o : outcomes) {
    ASSERT_TRUE(o.result.has_value());
    ASSERT_FALSE(o.result->has_value()) << "reported success although leadership was lost";
    if (o.result->error().code() == Code::deadline_exceeded) ++unknown;
    else EXPECT_EQ(o.result->error().code(), Code::unavailable) << o.result->error().message();
  }
  EXPECT_GT(unknown, 0);
  EXPECT_NE(c.nodes[0]->status().role, NodeRole::leader);
  EXPECT_FALSE(c.nodes[0]->status().ready);

  // The cluster goes on; whatever committed is identical everywhere.
  ASSERT_TRUE(c.step_until([&] { return catga_fixture_leader_index(c.fixture) < 3; }));
  const unsigned leader = catga_fixture_leader_index(c.fixture);
  std::optional<Result<Applied>> after;
  c.nodes[leader]->propose("after", [&](Result<Applied> r) { after = std::move(r); });
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return after.has_value(); }));
  ASSERT_TRUE(after->has_value()) << testing::describe(after->error());
  ASSERT_TRUE(c.step_until([&] {
    return c.machines[0]->count() == c.machines[leader]->count() &&
           c.machines[1]->count() == c.machines[leader]->count() &&
           c.machines[2]->count() == c.machines[leader]->count();
  }));
  EXPECT_EQ(c.machines[0]->digest(), c.machines[1]->digest());
  EXPECT_EQ(c.machines[1]->digest(), c.machines[2]->digest());
}

TEST(RaftFixture, LaggingFollowerCatchesUpThroughSnapshotRestore) {
  FixtureCluster c(3, /*max_entry_bytes=*/64, /*in_flight=*/4, /*threshold=*/8, /*trailing=*/2);
  catga_fixture_elect(c.fixture, 0);
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return c.nodes[0]->status().ready; }));
  catga_fixture_kill(c.fixture, 2);

  constexpr int kRecords = 60;  // one record per entry (64-byte entries)
  int done = 0;
  for (int i = 0; i < kRecords; ++i) {
    c.nodes[0]->propose("s" + std::to_string(i), [&](Result<Applied> r) {
      EXPECT_TRUE(r.has_value());
      ++done;
    });
  }
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return done == kRecords; }));
  EXPECT_GT(c.machines[0]->snapshots(), 0);
  EXPECT_GT(c.nodes[0]->status().last_snapshot_index, 0u);

  catga_fixture_revive(c.fixture, 2);
  ASSERT_TRUE(c.step_until([&] {
    return c.machines[2]->count() == c.machines[0]->count() && c.machines[1]->count() == c.machines[0]->count();
  }));
  EXPECT_GE(c.machines[2]->restores(), 1);
  EXPECT_GE(catga_fixture_n_install_snapshot_recv(c.fixture, 2), 1u);
  EXPECT_EQ(c.machines[2]->digest(), c.machines[0]->digest());
  EXPECT_EQ(c.machines[1]->digest(), c.machines[0]->digest());
}

TEST(RaftFixture, ByteThresholdSnapshotsEveryNodeWhateverTheEntryThreshold) {
  // The entry threshold is out of reach; 60 KiB records, one per 64 KiB entry,
  // cross the 1 MiB byte threshold every 18 entries.
  FixtureCluster c(3, /*max_entry_bytes=*/64 << 10, /*in_flight=*/4, /*threshold=*/1000000, /*trailing=*/1000,
                   [](ClusterOptions& o) {
                     o.snapshot_threshold_bytes = 1 << 20;
                     o.snapshot_trailing_bytes = 128 << 10;
                   });
  catga_fixture_elect(c.fixture, 0);
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return c.nodes[0]->status().ready; }));

  constexpr int kRecords = 80;
  int done = 0;
  for (int i = 0; i < kRecords; ++i) {
    std::string record(60 << 10, static_cast<char>('a' + i % 26));
    record += std::to_string(i);
    c.nodes[0]->propose(std::move(record), [&](Result<Applied> r) {
      EXPECT_TRUE(r.has_value());
      ++done;
    });
  }
  c.poll();
  ASSERT_TRUE(c.step_until([&] {
    if (done != kRecords) return false;
    for (auto& m : c.machines)
      if (m->count() != kRecords) return false;
    return true;
  }));
  // libraft checks on its next event (a heartbeat will do), and not while a
  // snapshot is still being written: one more may follow the last apply.
  ASSERT_TRUE(c.step_until([&] {
    for (auto& n : c.nodes) {
      const NodeStatus st = n->status();
      if (st.counters.snapshots_taken < 3 || st.bytes_since_snapshot >= (1u << 20)) return false;
    }
    return true;
  }));
  for (unsigned i = 0; i < 3; ++i) {
    const NodeStatus st = c.nodes[i]->status();
    EXPECT_GE(c.machines[i]->snapshots(), 3) << "node " << i + 1;
    EXPECT_GT(st.last_snapshot_index, 0u) << "node " << i + 1;
    EXPECT_LT(st.bytes_since_snapshot, std::uint64_t{1} << 20) << "node " << i + 1;
    EXPECT_EQ(c.machines[i]->digest(), c.machines[0]->digest());
  }
  // 80 entries of 60 KiB make at most 4 byte-triggered snapshots per node.
  EXPECT_LE(c.machines[0]->snapshots(), 4);
}

// A follower is writing a snapshot of its own (slow disk) when the leader,
// which compacted its log meanwhile, sends it an InstallSnapshot. libraft
// 0.22.1 parks the install and, when the follower's own write completes,
// resumes it through a pointer it has just cleared (src/legacy.c,
// takeSnapshotCb): a null dereference. Returns the number of snapshots the
// follower installed once it caught up.
std::uint64_t install_while_taking_a_snapshot() {
  FixtureCluster c(3, /*max_entry_bytes=*/64, /*in_flight=*/4, /*threshold=*/8, /*trailing=*/1);
  EXPECT_TRUE(c.elect_node_1());
  auto propose = [&](int n) { c.propose_on_node_1(n, std::string(20, 'p')); };
  propose(4);
  EXPECT_TRUE(c.step_until([&] { return c.machines[2]->count() == 4; }));
  catga_fixture_set_disk_latency(c.fixture, 2, 3000);  // node 3's writes take 3 s
  propose(6);
  EXPECT_TRUE(c.step_until([&] { return c.machines[2]->snapshots() >= 1; })) << "node 3 starts its own snapshot";
  for (unsigned a : {0u, 1u}) {
    catga_fixture_disconnect(c.fixture, a, 2);
    catga_fixture_disconnect(c.fixture, 2, a);
  }
  propose(40);  // the leader snapshots and drops the entries node 3 lacks
  EXPECT_TRUE(c.step_until([&] { return c.machines[0]->snapshots() >= 3 && c.machines[1]->count() == 50; }));
  for (unsigned a : {0u, 1u}) {
    catga_fixture_reconnect(c.fixture, a, 2);
    catga_fixture_reconnect(c.fixture, 2, a);
  }
  EXPECT_TRUE(c.step_until([&] { return c.machines[2]->count() == 50; })) << "node 3 catches up";
  EXPECT_EQ(c.machines[2]->digest(), c.machines[0]->digest());
  EXPECT_EQ(c.machines[1]->digest(), c.machines[0]->digest());
  return catga_fixture_n_install_snapshot_recv(c.fixture, 2);
}

TEST(RaftFixture, InstallSnapshotArrivingDuringTheFollowersOwnSnapshotIsDroppedAndSentAgain) {
  ASSERT_TRUE(catga_fixture_guard_installs);
  EXPECT_GE(install_while_taking_a_snapshot(), 2u) << "the dropped install and the one sent again";
}

// What the guard (catga_raft_drop_unsafe_install) prevents. Fails once
// libraft no longer crashes here: then the guard can go.
TEST(RaftFixtureKnownBugs, LibraftCrashesWhenAnInstallArrivesDuringTheFollowersOwnSnapshot) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        catga_fixture_guard_installs = false;
        install_while_taking_a_snapshot();
      },
      "");
}

// A follower whose answers to the leader are lost (one direction only) keeps
// receiving, applying and compacting: its snapshot, with 2 trailing entries,
// no longer reaches back to the entry the leader probes with. The leader
// never snapshots (its log still starts at index 1). When the answers flow
// again, libraft 0.22.1 rejects the probe ("missing previous entry") and
// lets the leader walk it back to index 0. Here the leader then only sends
// empty probes and the follower never catches up; with entries in that
// probe libraft appends them after the follower's last entry and copies
// past the end of the message (simulation seeds 337, 647, 928: a crash).
// The guard (catga_raft_skip_snapshotted_entries) makes the probe start
// after the follower's snapshot: the follower catches up with identical
// state and without an install. Returns how many messages the guard
// rewrote.
unsigned long follower_ahead_of_the_leaders_probe() {
  FixtureCluster c(3, /*max_entry_bytes=*/64, /*in_flight=*/4, /*threshold=*/8, /*trailing=*/2,
                   [](ClusterOptions& o) {
                     if (o.node_id == 1) o.snapshot_threshold = 1000000;  // the leader keeps its whole log
                   });
  EXPECT_TRUE(c.elect_node_1());
  auto propose = [&](int n) { c.propose_on_node_1(n, "r"); };
  propose(3);
  EXPECT_TRUE(c.step_until([&] { return c.machines[1]->count() == 3; }));
  catga_fixture_saturate(c.fixture, 1, 0);  // node 2's answers to the leader are lost
  propose(30);
  EXPECT_TRUE(c.step_until([&] { return c.completed == 33 && c.machines[1]->count() == 33; }));
  EXPECT_TRUE(c.step_until([&] { return c.machines[1]->snapshots() >= 1; })) << "node 2 compacts its log";
  EXPECT_EQ(c.machines[0]->snapshots(), 0) << "the leader keeps its log from index 1";
  catga_fixture_desaturate(c.fixture, 1, 0);
  propose(3);
  EXPECT_TRUE(c.step_until([&] {
    for (auto& m : c.machines)
      if (m->count() != 36) return false;
    return true;
  }));
  EXPECT_EQ(c.machines[1]->digest(), c.machines[0]->digest());
  EXPECT_EQ(c.machines[2]->digest(), c.machines[0]->digest());
  EXPECT_EQ(c.machines[1]->restores(), 0) << "caught up from the log, not by an install";
  EXPECT_EQ(catga_fixture_n_install_snapshot_recv(c.fixture, 1), 0u);
  EXPECT_EQ(c.failed, 0);
  return catga_fixture_skipped_appends(c.fixture, 1);
}

TEST(RaftFixture, AFollowerAheadOfTheLeadersProbeTakesEntriesAfterItsSnapshot) {
  ASSERT_TRUE(catga_fixture_guard_installs);
  EXPECT_GE(follower_ahead_of_the_leaders_probe(), 1u) << "the leader's probe reached below the follower's snapshot";
}

TEST(RaftFixture, UnreadableEntryStopsTheNode) {
  // An entry this build cannot read must stop the node, never be skipped.
  FixtureCluster c(1);  // a single voter elects itself at start
  ASSERT_TRUE(c.step_until([&] { return c.nodes[0]->status().ready; }));
  std::optional<Result<Applied>> first;
  c.nodes[0]->propose("good", [&](Result<Applied> r) { first = std::move(r); });
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return first.has_value(); }));
  ASSERT_TRUE(first->has_value());
  EXPECT_TRUE(c.nodes[0]->status().failure.empty());

  // A "CATG" entry of a future format version.
  std::string future = encode_record_batch(EntryHeader{1, 1}, std::vector<std::string_view>{"from the future"});
  future[4] = 9;
  ASSERT_EQ(catga_fixture_apply_raw(c.fixture, 0, future.data(), future.size()), 0);
  ASSERT_TRUE(c.step_until([&] { return !c.nodes[0]->status().failure.empty(); }, 20000));
  EXPECT_NE(c.nodes[0]->status().failure.find("version 9"), std::string::npos) << c.nodes[0]->status().failure;
  const std::uint64_t applied = c.machines[0]->count();

  // Further proposals are refused ("node stopped: ..."); nothing after the bad entry applies.
  std::optional<Result<Applied>> refused;
  c.nodes[0]->propose("after", [&](Result<Applied> r) { refused = std::move(r); });
  c.poll();
  ASSERT_TRUE(c.step_until([&] { return refused.has_value(); }, 20000));
  ASSERT_FALSE(refused->has_value());
  EXPECT_EQ(refused->error().code(), Code::failed_precondition);
  EXPECT_NE(refused->error().message().find("node stopped: "), std::string::npos) << refused->error().message();
  catga_fixture_step_until_elapsed(c.fixture, 2000);
  c.poll();
  EXPECT_EQ(c.machines[0]->count(), applied);
  EXPECT_FALSE(c.nodes[0]->status().ready);
}

}  // namespace
}  // namespace catga::internal
