// Forwarding over the peer channel in the situations issue 13 found broken:
// a cluster grown from one member (the lone node never listened and always
// proposed locally), a forward stuck on an ex-leader that became unreachable
// without a reset (it waited for the caller's whole deadline), and reads left
// waiting when a node stops itself (their waiter list was raced from several
// threads once RaftNode::post ran tasks inline).
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/blackhole_proxy.hpp"
#include "support/cluster.hpp"

using catga::Code;
using namespace catga::testing;
using testsupport::BlackholeProxy;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

// Retries a membership change on whichever node leads while another change
// settles or leadership moves.
catga::Result<void> on_leader(LocalCluster<bank::State>& cluster,
                              const std::function<catga::Result<void>(catga::Application&)>& change) {
  for (int i = 0; i < 200; ++i) {
    auto l = cluster.leader();
    if (!l) continue;
    auto r = change(cluster.app(*l));
    if (r || (r.error().code() != Code::failed_precondition && r.error().code() != Code::unavailable)) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return catga::Error{Code::deadline_exceeded, "change never accepted"};
}

// Asks the leader to transfer_leadership(to) (0: libraft picks) until
// `moved(leader index)` holds; libraft aborts a transfer whose target is not
// caught up yet, so it tries again.
bool move_leadership(LocalCluster<bank::State>& cluster, std::uint64_t to,
                     const std::function<bool(std::size_t)>& moved) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto l = cluster.leader();
    if (!l) continue;
    if (moved(*l)) return true;
    (void)cluster.app(*l).transfer_leadership(to);
  }
  auto l = cluster.leader();
  return l && moved(*l);
}

long voters_seen_by(catga::Application& app) {
  auto s = app.status();
  return std::count_if(s.members.begin(), s.members.end(),
                       [](const catga::MemberStatus& m) { return m.member.role == catga::MemberRole::voter; });
}

// Sends Open commands through node 0 until stopped; counts the outcomes.
class BackgroundWriter {
 public:
  explicit BackgroundWriter(catga::Application& app) : thread_([this, &app] {
    for (int i = 0; !stop_ && i < 1'000'000; ++i) {
      auto r = app.send(bank::Open{.owner = "bg" + std::to_string(i)}, {.timeout = std::chrono::seconds(20)});
      (r ? ok_ : failed_)++;
    }
  }) {}
  ~BackgroundWriter() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::size_t ok() const { return ok_; }
  std::size_t failed() const { return failed_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> ok_{0}, failed_{0};
  std::thread thread_;
};

}  // namespace

// A node started as the only member, grown with --join nodes and
// add_member (docs/operations.md), must serve writes sent through every
// member: it listens on its peer channel and forwards once it is not the
// leader.
TEST(Membership, ClusterStartedWithOneMemberGrowsToFiveAndShrinksToThreeUnderLoad) {
  LocalCluster<bank::State> cluster(1, register_bank);
  ASSERT_TRUE(cluster.leader());
  BackgroundWriter writer(cluster.app(0));
  ASSERT_TRUE(wait_for([&] { return writer.ok() > 20; }));

  int step = 0;
  auto write_through_every_member = [&] {
    ++step;
    for (std::size_t i = 0; i < cluster.size(); ++i) {
      if (!cluster.running(i)) continue;
      auto r = cluster.app(i).send(bank::Open{.owner = "step" + std::to_string(step) + "-node" + std::to_string(i + 1)},
                                   {.timeout = std::chrono::seconds(10)});
      EXPECT_THAT(r, IsOk()) << "step " << step << ", write through node " << i + 1;
    }
    const auto before = writer.ok();
    EXPECT_TRUE(wait_for([&] { return writer.ok() > before + 10; })) << "background writer stalled at step " << step;
  };
  auto grow = [&] {
    std::size_t added = cluster.add_node();
    auto member = cluster.member(added);
    ASSERT_THAT(on_leader(cluster, [&](catga::Application& app) { return app.add_member(member); }), IsOk());
    ASSERT_TRUE(wait_for([&] { return voters_seen_by(cluster.app(added)) == static_cast<long>(added + 1); }))
        << "node " << added + 1 << " never saw itself a voter";
  };

  write_through_every_member();  // 1 member
  grow();
  grow();
  write_through_every_member();  // 3 members
  // The node that started alone hands leadership over: from now on it forwards.
  ASSERT_TRUE(move_leadership(cluster, 0, [](std::size_t l) { return l != 0; }));
  ASSERT_TRUE(wait_for([&] {
    auto s = cluster.app(0).status();
    return s.leader_id != 0 && s.leader_id != 1;
  }));
  write_through_every_member();  // 3 members, node 1 a follower
  grow();
  grow();
  write_through_every_member();  // 5 members
  for (std::size_t removed : {std::size_t{4}, std::size_t{3}}) {
    ASSERT_TRUE(move_leadership(cluster, 0, [&](std::size_t l) { return l != removed; }));
    ASSERT_THAT(on_leader(cluster, [&](catga::Application& app) { return app.remove_member(removed + 1); }), IsOk());
    cluster.stop(removed);
  }
  write_through_every_member();  // 3 members
  writer.stop();
  EXPECT_EQ(writer.failed(), 0u);

  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  EXPECT_EQ(voters_seen_by(cluster.app(*leader)), 3);
  ASSERT_THAT(cluster.app(*leader).send(bank::GetAccount{.account = 1}, {.consistency = catga::Consistency::linearizable}),
              IsOk());
  ASSERT_TRUE(cluster.wait_applied(cluster.app(*leader).status().commit_index));
  const std::string digest = cluster.digest(*leader);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(cluster.digest(i), digest) << "node " << i + 1 << " diverged";
}

// Three nodes; node 2 reaches node 1's peer channel through `proxy` (the
// others connect directly, Raft traffic never goes through it); node 1 leads.
class SilentLinkToLeader : public ::testing::Test {
 protected:
  void SetUp() override {
    proxy.set_target(cluster.member(0).peer_address);
    ASSERT_TRUE(cluster.leader());
    ASSERT_TRUE(move_leadership(cluster, 1, [](std::size_t l) { return l == 0; }));
    ASSERT_TRUE(wait_for([&] { return cluster.leader() == 0u && cluster.app(1).status().leader_id == 1; }));
  }
  BlackholeProxy proxy;
  LocalCluster<bank::State> cluster{3, register_bank, [this](catga::ClusterOptions& o) {
                                      if (o.node_id == 2) o.members[0].peer_address = proxy.address();
                                    }};
};

// Node 2 reaches node 1's peer channel through a proxy that then goes silent
// (packets dropped, connection not reset) while leadership moves to node 3.
// The forward that was stuck on node 1 is given up after about an election
// timeout and retried on node 3; the caller gets its answer.
TEST_F(SilentLinkToLeader, ForwardStuckOnAnUnreachableExLeaderIsRetriedOnTheNewLeader) {
  catga::Application& follower = cluster.app(1);
  ASSERT_THAT(follower.send(bank::Open{.owner = "through the proxy"}), IsOk());
  ASSERT_GE(proxy.accepted(), 1u);

  proxy.blackhole();
  const auto forwarded_before = follower.status().counters.commands_forwarded;
  const auto retried_before = follower.status().counters.commands_retried;
  // Deadline: 60 election timeouts (500 ms each); an attempt is given up after about one.
  const auto deadline = std::chrono::seconds(30);
  const auto sent_at = std::chrono::steady_clock::now();
  auto answer = std::async(std::launch::async, [&] {
    auto r = follower.send(bank::Open{.owner = "stuck"}, {.timeout = deadline});
    return std::make_pair(std::move(r), std::chrono::steady_clock::now());
  });
  ASSERT_TRUE(wait_for([&] { return proxy.dropped_bytes() > 0; })) << "the forward never reached the proxy";
  EXPECT_GT(follower.status().counters.commands_forwarded, forwarded_before);

  // Node 1 stays up, just unreachable from node 2's peer channel.
  ASSERT_TRUE(move_leadership(cluster, 3, [](std::size_t l) { return l == 2; }));
  auto [result, answered_at] = answer.get();
  ASSERT_THAT(result, IsOk());
  EXPECT_LT(answered_at - sent_at, deadline) << "answered only at the caller's deadline";
  EXPECT_GT(follower.status().counters.commands_retried, retried_before);
  // The link to node 1 passes nothing since blackhole(): the answer came from node 3.
  EXPECT_EQ(follower.status().leader_id, 3u);
  // Node 3 (the new leader) applied it.
  auto on_new_leader = cluster.app(2).send(bank::GetAccount{.account = result->id},
                                           {.consistency = catga::Consistency::linearizable});
  ASSERT_THAT(on_new_leader, IsOk());
  EXPECT_EQ(on_new_leader->owner, "stuck");
}

// A linearizable read on a follower asks the leader for a read index over
// the peer channel. With the link to the leader silent (and the leader
// unchanged) the request used to wait until the connection broke — past the
// read's own timeout, indefinitely; it now fails as unavailable (nothing
// happened, retry) after about an election timeout.
TEST_F(SilentLinkToLeader, LinearizableReadBehindASilentLinkFailsRetryablyInsteadOfHanging) {
  const catga::QueryOptions linearizable{.consistency = catga::Consistency::linearizable,
                                         .timeout = std::chrono::seconds(30)};
  ASSERT_THAT(cluster.app(1).send(bank::GetAccount{.account = 1}, linearizable), HasCode(Code::not_found));

  proxy.blackhole();
  auto answer = std::make_shared<std::promise<catga::Result<bank::Account>>>();
  auto answered = answer->get_future();
  cluster.app(1).send(bank::GetAccount{.account = 1}, linearizable,
                      [answer](catga::Result<bank::Account> r) { answer->set_value(std::move(r)); });
  // Bounded by the read's own timeout plus slack; it completes after about 500 ms.
  ASSERT_EQ(answered.wait_for(std::chrono::seconds(40)), std::future_status::ready) << "the read hangs";
  EXPECT_THAT(answered.get(), HasCode(Code::unavailable));
  EXPECT_GT(proxy.dropped_bytes(), 0u);
}

// A node that stops itself (here: its data directory disappears, which it
// checks every second) while reads wait for an index it will never apply.
// The waiting reads, and reads arriving afterwards from several threads, all
// complete with an error; under the tsan preset this used to report a data
// race on the waiter list (RaftNode::post runs tasks inline once the loop is
// gone).
TEST(ReplicatedApplication, ReadsWaitingWhileTheNodeStopsItselfCompleteWithoutARace) {
  LocalCluster<bank::State> cluster(1, register_bank);
  ASSERT_TRUE(cluster.leader());
  catga::Application& app = cluster.app(0);
  auto receipt = app.send_receipt(bank::Open{.owner = "before"});
  ASSERT_THAT(receipt.result, IsOk());

  const catga::QueryOptions far_ahead{.consistency = catga::Consistency::read_your_writes,
                                      .min_index = receipt.index + 1'000'000,
                                      .timeout = std::chrono::milliseconds(300)};
  std::atomic<bool> stop{false};
  std::atomic<int> completed{0}, succeeded{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        auto r = app.send(bank::GetAccount{.account = receipt.result->id}, far_ahead);
        ++completed;
        if (r) ++succeeded;
      }
    });
  }
  ASSERT_TRUE(wait_for([&] { return completed > 4; }));

  const auto data_dir = cluster.options(0).data_dir;
  std::filesystem::rename(data_dir, data_dir.string() + ".gone");
  ASSERT_TRUE(wait_for([&] { return !app.status().failure.empty(); }));
  // Reads keep arriving after the stop, from every reader thread.
  const int at_stop = completed;
  EXPECT_TRUE(wait_for([&] { return completed > at_stop + 8; }));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(succeeded, 0);
  // Local reads too: the stopped node's state may be arbitrarily stale.
  EXPECT_THAT(app.send(bank::GetAccount{.account = receipt.result->id}),
              HasError(catga::Code::failed_precondition, ::testing::HasSubstr("node stopped: ")));
  std::filesystem::rename(data_dir.string() + ".gone", data_dir);
}

namespace {

// Three nodes; node 1's Raft traffic to and from the others passes through
// proxies (one per direction and peer) the test can silence: a partition of
// node 1 that TCP does not notice. The peer channels connect directly.
class IsolatedLeader : public ::testing::Test {
 protected:
  void SetUp() override {
    to2.set_target(cluster.member(1).address);
    to3.set_target(cluster.member(2).address);
    from2.set_target(cluster.member(0).address);
    from3.set_target(cluster.member(0).address);
    ASSERT_TRUE(cluster.leader());
    ASSERT_TRUE(move_leadership(cluster, 1, [](std::size_t l) { return l == 0; }));
  }
  void isolate_node1() {
    for (BlackholeProxy* p : {&to2, &to3, &from2, &from3}) p->blackhole();
  }
  BlackholeProxy to2, to3, from2, from3;  // node 1 -> 2, 1 -> 3, 2 -> 1, 3 -> 1
  LocalCluster<bank::State> cluster{3, register_bank, [this](catga::ClusterOptions& o) {
                                      if (o.node_id == 1) {
                                        o.members[1].address = to2.address();
                                        o.members[2].address = to3.address();
                                      }
                                      if (o.node_id == 2) o.members[0].address = from2.address();
                                      if (o.node_id == 3) o.members[0].address = from3.address();
                                    }};
};

}  // namespace

// A leader cut off from the others, its loop frozen while they elect a new
// leader and acknowledge a write, still believes it leads when it runs
// again. A linearizable read it is then asked for must not be answered from
// its own state, which misses that write: its barrier (Raft's read index)
// needs a majority in its term, which it no longer has. Answered at all, the
// read must show the write.
TEST_F(IsolatedLeader, ADeposedLeaderServesNoLinearizableReadMissingANewerWrite) {
  auto opened = cluster.app(0).send(bank::Open{.owner = "isolated", .initial = 1});
  ASSERT_THAT(opened, IsOk());
  const std::uint64_t account = opened->id;
  ASSERT_TRUE(cluster.wait_applied(cluster.app(0).status().applied_index));

  isolate_node1();
  // Frozen like a SIGSTOP: it neither steps down nor hears of the new term.
  cluster.pause(0, std::chrono::seconds(8));
  std::optional<std::size_t> new_leader;
  ASSERT_TRUE(wait_for([&] {
    for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
      auto s = cluster.app(i).status();
      if (s.role == catga::NodeRole::leader && s.ready) new_leader = i;
    }
    return new_leader.has_value();
  })) << "nodes 2 and 3 elected no leader";
  auto deposited = cluster.app(*new_leader).send(bank::Deposit{.account = account, .amount = 10});
  ASSERT_THAT(deposited, IsOk());
  ASSERT_EQ(*deposited, 11);

  // Asked while node 1 is frozen: served, if at all, once it runs again,
  // still in its old term and role.
  auto read = cluster.app(0).send(bank::GetAccount{.account = account},
                                  {.consistency = catga::Consistency::linearizable,
                                   .timeout = std::chrono::seconds(15)});
  EXPECT_FALSE(read && read->balance != 11)
      << "the cut-off leader answered balance " << read->balance << ", missing the acknowledged deposit";
  EXPECT_FALSE(read.has_value()) << "an isolated node answered a linearizable read";
  // The others go on, with the deposit.
  auto on_new_leader = cluster.app(*new_leader).send(bank::GetAccount{.account = account},
                                                     {.consistency = catga::Consistency::linearizable});
  ASSERT_THAT(on_new_leader, IsOk());
  EXPECT_EQ(on_new_leader->balance, 11);
}
