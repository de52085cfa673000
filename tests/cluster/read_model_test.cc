// Every-node read models across restarts and snapshot installs (issue 13,
// item 4). A snapshot replaces the state without replaying the entries it
// covers, so their events are never delivered on that node; the on_restore
// hook hands the read model the restored state instead. Before the hook, a
// restarted follower counted only the events after its snapshot.
#include <gtest/gtest.h>

#include <array>
#include <mutex>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Code;
using namespace catga::testing;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

// A node's read model: deposits seen and their sum. Accounts open with 0 and
// only deposits change balances, so the state gives the same numbers.
struct DepositTotals {
  std::int64_t deposits = 0;
  std::int64_t amount = 0;
  friend bool operator==(const DepositTotals&, const DepositTotals&) = default;
};

class ReadModel {
 public:
  void add(const bank::Deposited& e) {
    std::lock_guard lock(mu_);
    totals_.deposits++;
    totals_.amount += e.amount;
  }
  void rebuild(const bank::State& s) {
    DepositTotals t;
    for (const auto& line : s.journal) t.deposits += line.starts_with("deposit ");
    for (const auto& [id, account] : s.accounts) t.amount += account.balance;
    std::lock_guard lock(mu_);
    totals_ = t;
    restores_++;
  }
  void reset() {
    std::lock_guard lock(mu_);
    totals_ = {};
    restores_ = 0;
  }
  DepositTotals totals() const {
    std::lock_guard lock(mu_);
    return totals_;
  }
  int restores() const {
    std::lock_guard lock(mu_);
    return restores_;
  }

 private:
  mutable std::mutex mu_;
  DepositTotals totals_;
  int restores_ = 0;
};

// Each (re)start of node i gets an empty read model, as a new process would.
// Small snapshots (every `threshold` entries), a short log behind them.
// Members stagger their snapshots: the one of rank 2 takes its first after a
// third of the threshold, the one of rank 1 after two thirds.
struct ReadModelCluster {
  explicit ReadModelCluster(unsigned threshold = 32)
      : cluster{3,
                [this](catga::ApplicationBuilder<bank::State>& b, std::size_t node) {
                  models[node].reset();
                  bank::register_handlers(b)
                      .on<bank::Deposited>([m = &models[node]](const bank::Deposited& e) { m->add(e); })
                      .on_restore([m = &models[node]](const bank::State& s) { m->rebuild(s); });
                },
                [threshold](catga::ClusterOptions& o) {
                  o.snapshot_threshold = threshold;
                  o.snapshot_trailing = 8;
                }} {}

  std::array<ReadModel, 3> models;
  LocalCluster<bank::State> cluster;

  // bank::open_on_leader, failing the test if no account was opened.
  std::uint64_t open(std::size_t& leader, std::string owner) {
    const std::uint64_t id = bank::open_on_leader(cluster, leader, std::move(owner));
    EXPECT_NE(id, 0u) << "no leader, or no account opened";
    return id;
  }

  // `count` deposits of 1, 2, 3, 1, … through `node`; returns their sum.
  std::int64_t deposit(std::size_t node, std::uint64_t account, int count) {
    std::int64_t sum = 0;
    for (int i = 0; i < count; ++i) {
      const std::int64_t amount = 1 + i % 3;
      EXPECT_THAT(cluster.app(node).send(bank::Deposit{.account = account, .amount = amount}), IsOk());
      sum += amount;
    }
    return sum;
  }

  // Every running node applied everything and its read model says `expected`.
  void expect_every_model(std::size_t leader, const DepositTotals& expected) {
    EXPECT_TRUE(cluster.converged(leader));
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(wait_for([&] { return models[i].totals() == expected; }, std::chrono::seconds(10)))
          << "node " << i + 1 << " counts " << models[i].totals().deposits << " deposits, "
          << models[i].totals().amount << " in all; expected " << expected.deposits << ", " << expected.amount;
    }
  }
};

}  // namespace

TEST(ReadModel, RestartedFollowerRebuildsFromItsOwnSnapshot) {
  ReadModelCluster c;
  std::size_t leader = 0;
  const std::uint64_t account = c.open(leader, "rm");
  const std::size_t follower = (leader + 1) % 3;
  std::int64_t sum = c.deposit(leader, account, 100);
  ASSERT_TRUE(c.cluster.wait_applied(c.cluster.app(leader).status().commit_index));
  ASSERT_TRUE(wait_for([&] { return c.cluster.app(follower).status().last_snapshot_index > 0; }))
      << "the follower took no snapshot of its own";

  // Restarted: its own snapshot is loaded (hook), the entries after it are
  // applied again (events, replay set).
  c.cluster.stop(follower);
  c.cluster.start(follower);
  EXPECT_GE(c.models[follower].restores(), 1);
  auto now_leader = c.cluster.leader();
  ASSERT_TRUE(now_leader);
  sum += c.deposit(*now_leader, account, 10);
  c.expect_every_model(*now_leader, {.deposits = 110, .amount = sum});
}

TEST(ReadModel, FollowerBehindLogCompactionGetsASnapshotAndRebuilds) {
  ReadModelCluster c;
  std::size_t leader = 0;
  const std::uint64_t account = c.open(leader, "install");
  const std::size_t follower = (leader + 1) % 3;
  c.cluster.stop(follower);  // long before its first snapshot
  std::int64_t sum = c.deposit(leader, account, 150);
  // The leader's log now starts far past where the follower stopped.
  ASSERT_TRUE(wait_for([&] { return c.cluster.app(leader).status().last_snapshot_index >= 100; }));

  c.cluster.start(follower);
  ASSERT_TRUE(wait_for([&] { return c.cluster.app(follower).status().counters.snapshots_installed >= 1; }))
      << "the follower caught up without a snapshot";
  EXPECT_GE(c.models[follower].restores(), 1);
  sum += c.deposit(leader, account, 5);
  c.expect_every_model(leader, {.deposits = 155, .amount = sum});
}

TEST(ReadModel, NoSnapshotNoHookAndEveryEventIsDeliveredAgain) {
  // No member snapshots: with the default 32, the member of rank 2 takes its
  // first, staggered snapshot after about 11 entries, and the start-up
  // announcements alone are 3 to 6 of them.
  ReadModelCluster c(100000);
  std::size_t leader = 0;
  const std::uint64_t account = c.open(leader, "replay");
  const std::size_t follower = (leader + 1) % 3;
  std::int64_t sum = c.deposit(leader, account, 5);  // far below the snapshot threshold
  ASSERT_TRUE(c.cluster.wait_applied(c.cluster.app(leader).status().commit_index));
  ASSERT_EQ(c.cluster.app(follower).status().last_snapshot_index, 0u);
  c.cluster.stop(follower);
  c.cluster.start(follower);
  c.expect_every_model(leader, {.deposits = 5, .amount = sum});
  EXPECT_EQ(c.models[follower].restores(), 0);
}
