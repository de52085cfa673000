// The Application over real Raft: the same handlers and call sites in memory,
// as a single durable node and as a 3-node cluster on loopback.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "catga/testing.hpp"
#include "core/application_access.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Code;
using catga::Result;
using namespace catga::testing;
using ::testing::HasSubstr;
using testsupport::LocalCluster;
using testsupport::TempDir;
using testsupport::wait_for;

namespace {

void register_bank(catga::ApplicationBuilder<bank::State>& b, std::size_t) { bank::register_handlers(b); }

// One scenario, written once, against whatever Application it is given.
std::vector<std::string> exercise(catga::Application& app) {
  std::vector<std::string> log;
  auto print = [&](const auto& r) {
    std::ostringstream os;
    if (r) os << "ok";
    else os << r.error();
    log.push_back(os.str());
  };
  auto a = app.send(bank::Open{.owner = "ada", .initial = 10});
  print(a);
  print(app.send(bank::Deposit{.account = a ? a->id : 0, .amount = 5}));
  print(app.send(bank::Deposit{.account = 77, .amount = 5}));
  print(app.send(bank::Open{}));
  print(app.send(bank::Close{.account = a ? a->id : 0}));
  print(app.send(bank::GetAccount{.account = a ? a->id : 0}));
  auto b = app.send(bank::Open{.owner = "bob"});
  log.push_back(b ? "id " + std::to_string(b->id) : "no id");
  return log;
}

}  // namespace

TEST(ReplicatedApplication, SameCodeInMemoryAndClustered) {
  catga::ApplicationBuilder<bank::State> mem;
  bank::register_handlers(mem).in_memory();
  auto in_memory = mem.build();
  ASSERT_THAT(in_memory, IsOk());
  auto expected = exercise(**in_memory);

  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  EXPECT_EQ(exercise(cluster.app(*leader)), expected);
}

TEST(ReplicatedApplication, SingleDurableNodeKeepsStateAcrossRestarts) {
  TempDir dir;
  auto open = [&] {
    catga::ApplicationBuilder<bank::State> b;
    bank::register_handlers(b).data_dir(dir.path() / "data");
    auto app = b.build();
    EXPECT_THAT(app, IsOk());
    return std::move(*app);
  };
  {
    auto app = open();
    ASSERT_TRUE(wait_for([&] { return app->status().ready; }));
    ASSERT_THAT(app->send(bank::Open{.owner = "ada", .initial = 3}), IsOk());
    ASSERT_THAT(app->send(bank::Deposit{.account = 1, .amount = 4}), IsOkAndHolds(7));
  }
  auto app = open();
  ASSERT_TRUE(wait_for([&] { return app->status().ready; }));
  auto acc = app->send(bank::GetAccount{.account = 1}, {.consistency = catga::Consistency::linearizable});
  ASSERT_THAT(acc, IsOk());
  EXPECT_EQ(acc->balance, 7);
  // The id counter survived too.
  EXPECT_EQ(app->send(bank::Open{.owner = "bob"})->id, 2u);
}

TEST(ReplicatedApplication, ReplicatesTenThousandCommandsToEveryNode) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  auto& app = cluster.app(*leader);
  auto account = app.send(bank::Open{.owner = "many"});
  ASSERT_THAT(account, IsOk());

  constexpr int kThreads = 8, kPerThread = 1250;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&] {
      // Keep up to 32 commands in flight per caller, through the callback API.
      std::mutex mu;
      std::condition_variable cv;
      int in_flight = 0;
      for (int i = 0; i < kPerThread; ++i) {
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return in_flight < 32; });
          ++in_flight;
        }
        app.send(bank::Deposit{.account = account->id, .amount = 1}, catga::CommandOptions{}, [&](Result<std::int64_t> r) {
          (r ? ok : failed)++;
          std::lock_guard lock(mu);
          --in_flight;
          cv.notify_one();
        });
      }
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight == 0; });
    });
  }
  for (auto& c : callers) c.join();
  EXPECT_EQ(ok.load(), kThreads * kPerThread);
  EXPECT_EQ(failed.load(), 0);

  const auto commit = app.status().commit_index;
  ASSERT_TRUE(cluster.wait_applied(commit));
  const std::string d0 = cluster.digest(0);
  EXPECT_EQ(cluster.digest(1), d0);
  EXPECT_EQ(cluster.digest(2), d0);
  for (std::size_t i = 0; i < 3; ++i) {
    auto acc = cluster.app(i).send(bank::GetAccount{.account = account->id});
    ASSERT_THAT(acc, IsOk());
    EXPECT_EQ(acc->balance, kThreads * kPerThread) << "node " << i + 1;
  }
}

TEST(ReplicatedApplication, CommandsSentOnAFollowerAreForwardedToTheLeader) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  std::size_t follower = (*leader + 1) % 3;
  ASSERT_TRUE(wait_for([&] { return cluster.app(follower).status().leader_id != 0; }));
  auto& app = cluster.app(follower);
  auto acc = app.send(bank::Open{.owner = "via-follower", .initial = 1});
  ASSERT_THAT(acc, IsOk());
  EXPECT_THAT(app.send(bank::Deposit{.account = acc->id, .amount = 2}), IsOkAndHolds(3));
  // Handler errors come back unchanged.
  EXPECT_THAT(app.send(bank::Deposit{.account = 999, .amount = 2}), HasError(Code::not_found, HasSubstr("999")));
  // A follower knows how recently it heard from the leader; the leader does not report it.
  ASSERT_TRUE(app.status().leader_last_contact.has_value());
  EXPECT_LT(*app.status().leader_last_contact, std::chrono::seconds(30));
  EXPECT_FALSE(cluster.app(*leader).status().leader_last_contact.has_value());
  // Counted: forwarded by the follower, packed into entries by the leader.
  EXPECT_GE(app.status().counters.commands_forwarded, 3u);
  auto leader_counters = cluster.app(*leader).status().counters;
  EXPECT_GE(leader_counters.records_appended, 3u);
  EXPECT_GE(leader_counters.entries_appended, 1u);
  EXPECT_LE(leader_counters.entries_appended, leader_counters.records_appended);
  // Linearizable reads on a follower see it at once.
  auto seen = app.send(bank::GetAccount{.account = acc->id}, {.consistency = catga::Consistency::linearizable});
  ASSERT_THAT(seen, IsOk());
  EXPECT_EQ(seen->balance, 3);
}

TEST(ReplicatedApplication, SurvivesLeaderLossAndRestartsExactlyOnce) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto first = cluster.leader();
  ASSERT_TRUE(first);
  auto acc = cluster.app(*first).send(bank::Open{.owner = "a"});
  ASSERT_THAT(acc, IsOk());
  for (int i = 0; i < 50; ++i) ASSERT_THAT(cluster.app(*first).send(bank::Deposit{.account = acc->id, .amount = 1}), IsOk());

  cluster.stop(*first);
  auto second = cluster.leader();
  ASSERT_TRUE(second);
  ASSERT_NE(*second, *first);
  EXPECT_GE(cluster.app(*second).status().counters.leader_changes, 1u);
  for (int i = 0; i < 50; ++i) ASSERT_THAT(cluster.app(*second).send(bank::Deposit{.account = acc->id, .amount = 1}), IsOk());

  cluster.start(*first);  // catches up from its own log and the leader
  auto commit = cluster.app(*second).status().commit_index;
  ASSERT_TRUE(cluster.wait_applied(commit));
  EXPECT_EQ(cluster.digest(*first), cluster.digest(*second));

  // Whole-cluster restart: every acknowledged command still applied once.
  for (std::size_t i = 0; i < 3; ++i) cluster.stop(i);
  for (std::size_t i = 0; i < 3; ++i) cluster.start(i);
  auto third = cluster.leader();
  ASSERT_TRUE(third);
  auto after = cluster.app(*third).send(bank::GetAccount{.account = acc->id}, {.consistency = catga::Consistency::linearizable});
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->balance, 100);
  auto commit2 = cluster.app(*third).status().commit_index;
  ASSERT_TRUE(cluster.wait_applied(commit2));
  EXPECT_EQ(cluster.digest(0), cluster.digest(1));
  EXPECT_EQ(cluster.digest(1), cluster.digest(2));
}

TEST(ReplicatedApplication, EventsReachEveryNodeAndLeaderOnlyHandlersRunOnce) {
  std::array<std::atomic<int>, 3> every{};
  std::atomic<int> leader_only{0};
  LocalCluster<bank::State> cluster(3, [&](catga::ApplicationBuilder<bank::State>& b, std::size_t node) {
    bank::register_handlers(b);
    b.on<bank::Deposited>([&every, node](const bank::Deposited&) { ++every[node]; });
    b.on<bank::Deposited>([&](const bank::Deposited&) { ++leader_only; }, catga::Delivery::leader_only);
  });
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  auto& app = cluster.app(*leader);
  auto acc = app.send(bank::Open{.owner = "e"});
  ASSERT_THAT(acc, IsOk());
  for (int i = 0; i < 10; ++i) ASSERT_THAT(app.send(bank::Deposit{.account = acc->id, .amount = 1}), IsOk());
  ASSERT_TRUE(cluster.wait_applied(app.status().commit_index));
  ASSERT_TRUE(wait_for([&] { return every[0] == 10 && every[1] == 10 && every[2] == 10; }));
  EXPECT_EQ(leader_only.load(), 10);
  // An event published outside a command travels through the log too.
  ASSERT_THAT(app.publish(bank::Deposited{.account = acc->id, .amount = 0}), IsOk());
  ASSERT_TRUE(wait_for([&] { return every[0] == 11 && every[1] == 11 && every[2] == 11; }));
  EXPECT_EQ(leader_only.load(), 11);
}

TEST(ReplicatedApplication, EventHandlersCanTellAReplayAfterRestart) {
  TempDir dir;
  std::vector<std::pair<std::int64_t, bool>> seen;  // (balance, replay)
  std::mutex mu;
  auto open = [&] {
    catga::ApplicationBuilder<bank::State> b;
    bank::register_handlers(b).data_dir(dir.path());
    b.on<bank::Deposited>([&](const bank::Deposited& e, const catga::EventContext& ctx) {
      std::lock_guard lock(mu);
      seen.emplace_back(e.balance, ctx.replay);
    });
    auto app = b.build();
    EXPECT_THAT(app, IsOk());
    return std::move(*app);
  };
  {
    auto app = open();
    ASSERT_THAT(app->send(bank::Open{.owner = "r"}), IsOk());
    ASSERT_THAT(app->send(bank::Deposit{.account = 1, .amount = 5}), IsOk());
  }
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_FALSE(seen[0].second);
    seen.clear();
  }
  auto app = open();
  // The log is applied again from the start (no snapshot yet): the event is
  // delivered again, marked as a possible replay; a new one is not.
  ASSERT_THAT(app->send(bank::Deposit{.account = 1, .amount = 1}), IsOk());
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (std::pair<std::int64_t, bool>(5, true)));
  EXPECT_EQ(seen[1], (std::pair<std::int64_t, bool>(6, false)));
}

TEST(ReplicatedApplication, ReadYourWritesOnAFollower) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  auto receipt = cluster.app(*leader).send_receipt(bank::Open{.owner = "ryw"});
  ASSERT_THAT(receipt.result, IsOk());
  EXPECT_GT(receipt.index, 0u);
  std::size_t follower = (*leader + 1) % 3;
  auto seen = cluster.app(follower).send(bank::GetAccount{.account = receipt.result->id},
                                         {.consistency = catga::Consistency::read_your_writes, .min_index = receipt.index});
  EXPECT_THAT(seen, IsOk());
}

// A follower usually holds a write's entry before it learns that the entry
// committed, which the leader tells it with its next message — with nothing
// else to send, its next heartbeat. A read_your_writes read of that write on
// the follower asks the leader for its read index instead: the barrier this
// costs the leader carries the commit index to the follower at once. Here
// the leader heartbeats every 2 s and the read's deadline is 1 s, so a read
// that waited for the heartbeat would fail with deadline_exceeded.
TEST(ReplicatedApplication, ReadYourWritesOnAFollowerDoesNotWaitForTheLeadersNextHeartbeat) {
  using namespace std::chrono_literals;
  LocalCluster<bank::State> cluster(3, register_bank);
  auto first = cluster.leader();
  ASSERT_TRUE(first);
  // Restart both followers with a 2 s heartbeat (theirs once they lead) and
  // a 20 s election timeout (none stands for election between heartbeats),
  // hand the leadership to one of them and stop the first leader: the two
  // left form a majority led by a node that heartbeats every 2 s.
  const auto slow = [](catga::ClusterOptions& o) {
    o.heartbeat_interval = 2s;
    o.election_timeout = 20s;
  };
  std::vector<std::size_t> followers;
  for (std::size_t i = 0; i < 3; ++i) {
    if (i != *first) followers.push_back(i);
  }
  for (std::size_t i : followers) {
    cluster.stop(i);
    ASSERT_THAT(cluster.try_start(i, slow), IsOk());
    auto now = cluster.leader();  // the first, unless an election came between
    ASSERT_TRUE(now);
    ASSERT_TRUE(cluster.wait_applied(cluster.app(*now).status().commit_index));
  }
  auto current = cluster.leader();
  ASSERT_TRUE(current);
  if (*current == *first) {
    ASSERT_THAT(cluster.app(*first).transfer_leadership(cluster.member(followers[0]).id), IsOk());
  }
  cluster.stop(*first);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  const std::size_t next = *leader, reader = next == followers[0] ? followers[1] : followers[0];
  // Nothing else in flight: the leader's client session is open, the records
  // a new leader writes (announcements, the apply format) are written, and
  // the reader applied all of it — the log stayed still for 1.5 s, longer
  // than the announcements' pace of one a second.
  ASSERT_THAT(cluster.app(next).send(bank::Open{.owner = "first"}), IsOk());
  ASSERT_TRUE(wait_for([&] {
    const std::uint64_t commit = cluster.app(next).status().commit_index;
    if (!cluster.wait_applied(commit)) return false;
    std::this_thread::sleep_for(1500ms);
    return cluster.app(next).status().commit_index == commit;
  }));

  auto receipt = cluster.app(next).send_receipt(bank::Open{.owner = "ryw"});
  ASSERT_THAT(receipt.result, IsOk());
  auto seen = cluster.app(reader).send(bank::GetAccount{.account = receipt.result->id},
                                       {.consistency = catga::Consistency::read_your_writes,
                                        .min_index = receipt.index,
                                        .timeout = 1s});
  EXPECT_THAT(seen, IsOk());
}

TEST(ReplicatedApplication, IdempotencyKeysApplyOnce) {
  LocalCluster<bank::State> cluster(3, register_bank);
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  auto& app = cluster.app(*leader);
  catga::CommandOptions keyed{.idempotency_key = "open-ada"};
  auto first = app.send(bank::Open{.owner = "ada"}, keyed);
  auto second = app.send(bank::Open{.owner = "ada"}, keyed);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(first->id, second->id);
  auto third = app.send(bank::Open{.owner = "ada"});  // no key: a new account
  ASSERT_THAT(third, IsOk());
  EXPECT_NE(third->id, first->id);
  ASSERT_TRUE(cluster.wait_applied(app.status().commit_index));
  for (std::size_t i = 0; i < 3; ++i) {
    auto& state = catga::internal::mediator_of(cluster.app(i)).state();
    std::shared_lock lock(state.mutex());
    auto journal = static_cast<catga::detail::StateCell<bank::State>&>(state).value.journal;
    EXPECT_EQ(std::count(journal.begin(), journal.end(), "open ada"), 2) << "node " << i + 1;
  }
}

TEST(ReplicatedApplication, ReadYourWritesGivesUpAtTheDeadline) {
  TempDir dir;
  catga::ApplicationBuilder<bank::State> b;
  bank::register_handlers(b).data_dir(dir.path());
  auto app = b.build();
  ASSERT_THAT(app, IsOk());
  auto never = (*app)->send(bank::GetAccount{.account = 1},
                            {.consistency = catga::Consistency::read_your_writes,
                             .min_index = 1'000'000,
                             .timeout = std::chrono::milliseconds(200)});
  EXPECT_THAT(never, HasCode(Code::deadline_exceeded));
}

TEST(ReplicatedApplication, SnapshotsOnDemandAndRestoresFromThem) {
  TempDir dir;
  auto open = [&] {
    catga::ApplicationBuilder<bank::State> b;
    bank::register_handlers(b).data_dir(dir.path());
    auto app = b.build();
    EXPECT_THAT(app, IsOk());
    return std::move(*app);
  };
  {
    auto app = open();
    ASSERT_THAT(app->send(bank::Open{.owner = "s", .initial = 7}), IsOk());
    auto index = app->take_snapshot();
    ASSERT_THAT(index, IsOk());
    EXPECT_GT(*index, 0u);
    ASSERT_TRUE(wait_for([&] { return app->status().last_snapshot_index >= *index; }));
    EXPECT_EQ(app->status().counters.snapshots_taken, 1u);
    ASSERT_THAT(app->send(bank::Deposit{.account = 1, .amount = 1}), IsOkAndHolds(8));
  }
  // Restart: the snapshot, then the entry after it.
  auto app = open();
  auto acc = app->send(bank::GetAccount{.account = 1}, {.consistency = catga::Consistency::linearizable});
  ASSERT_THAT(acc, IsOk());
  EXPECT_EQ(acc->balance, 8);
  EXPECT_GT(app->status().last_snapshot_index, 0u);
}

TEST(ReplicatedApplication, InvalidClusterOptionsFailBeforeStarting) {
  TempDir dir;
  catga::ApplicationBuilder<bank::State> b;
  bank::register_handlers(b).cluster({.node_id = 9, .members = {{1, "127.0.0.1:1"}}, .data_dir = dir.path()});
  EXPECT_THAT(b.build(), HasCode(Code::invalid_argument));
}
