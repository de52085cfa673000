// Rolling upgrades (docs/operations.md, "Rolling upgrades"): a 3-node cluster
// moves, node by node, from a build with the v1 handlers to one that adds a
// command, under traffic. Real nodes on 127.0.0.1, durable logs, snapshots.
#include <gtest/gtest.h>

#include <array>
#include <iostream>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Code;
using catga::Result;
using namespace catga::testing;
using ::testing::HasSubstr;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

constexpr std::int64_t kInitial = 1'000'000;

// Node i runs the "v2" build (bank::Withdraw added) once upgraded[i] is set
// and it is (re)started.
struct UpgradableCluster {
  std::array<std::atomic<bool>, 3> upgraded{};
  LocalCluster<bank::State> cluster{3,
                                    [this](catga::ApplicationBuilder<bank::State>& b, std::size_t node) {
                                      bank::register_handlers(b);
                                      if (upgraded[node]) b.command<bank::Withdraw>(bank::withdraw);
                                    },
                                    [](catga::ClusterOptions& o) {
                                      // Restarts load snapshots: the table travels in them.
                                      o.snapshot_threshold = 64;
                                      o.snapshot_trailing = 16;
                                    }};

  // Sends a withdrawal through node i (which must be upgraded) until the
  // answer is not "unavailable" (elections while nodes restart).
  Result<std::int64_t> withdraw(std::size_t i, std::uint64_t account) {
    Result<std::int64_t> r = catga::Error{Code::unavailable, "not sent"};
    wait_for([&] {
      r = cluster.app(i).send(bank::Withdraw{.account = account, .amount = 1});
      return r || r.error().code() != Code::unavailable;
    });
    return r;
  }
};

// Sends deposits through every running node, one after another, until
// stopped; counts the answers. The main thread stops and starts nodes inside
// pause(), never while a send is under way.
class Traffic {
 public:
  Traffic(UpgradableCluster& c, std::uint64_t account) : c_(c), account_(account), thread_([this] { run(); }) {}
  ~Traffic() { stop(); }
  template <class F>
  void pause(F&& f) {
    paused_ = true;
    std::lock_guard lock(sending_);
    f();
    paused_ = false;
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t ok() const { return ok_; }
  std::uint64_t unknown() const { return unknown_; }
  std::map<Code, std::uint64_t> others() const { return others_; }

 private:
  void run() {
    for (std::size_t n = 0; !stop_ && n < 1'000'000; ++n) {
      if (paused_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      std::lock_guard lock(sending_);
      const std::size_t i = n % 3;
      if (!c_.cluster.running(i)) continue;
      auto r = c_.cluster.app(i).send(bank::Deposit{.account = account_, .amount = 1},
                                      catga::CommandOptions{.timeout = std::chrono::seconds(5)});
      if (r) ++ok_;
      else if (r.error().code() == Code::deadline_exceeded) ++unknown_;
      else if (r.error().code() != Code::unavailable) ++others_[r.error().code()];  // unavailable: nothing happened
    }
  }

  UpgradableCluster& c_;
  std::uint64_t account_;
  std::mutex sending_;
  std::atomic<bool> paused_{false};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> ok_{0}, unknown_{0};
  std::map<Code, std::uint64_t> others_;  // read after stop()
  std::thread thread_;
};

std::int64_t balance(catga::Application& app, std::uint64_t account) {
  auto a = app.send(bank::GetAccount{.account = account});
  return a ? a->balance : -1;
}

}  // namespace

TEST(RollingUpgrade, ANewCommandIsRefusedUntilTheLastNodeIsUpgradedAndNoReplicaDiverges) {
  UpgradableCluster c;
  auto leader = c.cluster.leader();
  ASSERT_TRUE(leader);
  auto account = c.cluster.app(*leader).send(bank::Open{.owner = "upgrade", .initial = kInitial});
  ASSERT_THAT(account, IsOk());
  // The upgrade starts from a running cluster: every member announced v1.
  ASSERT_TRUE(wait_for([&] { return c.cluster.app(*leader).status().announcements.size() == 3; }));

  Traffic traffic(c, account->id);
  std::int64_t withdrawn = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    traffic.pause([&] {
      c.cluster.stop(i);
      c.upgraded[i] = true;
      c.cluster.start(i);  // same data directory, the v2 handler set
    });
    ASSERT_TRUE(wait_for([&] { return traffic.ok() > 50 * (i + 1); })) << "traffic continues";
    if (i < 2) {
      // Refused, naming exactly the members still on v1, once node i's new
      // announcement has applied (its old one is still in the table before).
      const std::string still_old = i == 0 ? "by members 2, 3 (" : "by member 3 (";
      Result<std::int64_t> refused = 0;
      ASSERT_TRUE(wait_for([&] {
        refused = c.withdraw(i, account->id);
        return !refused && std::string(refused.error().message()).find(still_old) != std::string::npos;
      })) << (refused ? "accepted" : refused.error().to_string());
      EXPECT_THAT(refused, HasError(Code::failed_precondition, HasSubstr("command bank.withdraw.v1 is not handled")));
    }
  }
  // Every member announced v2: accepted through every node.
  for (std::size_t i = 0; i < 3; ++i) {
    Result<std::int64_t> r = catga::Error{Code::unavailable, "not sent"};
    ASSERT_TRUE(wait_for([&] {
      r = c.withdraw(i, account->id);
      return r.has_value();
    })) << r.error().to_string();
    ++withdrawn;
  }
  traffic.stop();
  std::cout << "deposits applied " << traffic.ok() << ", outcome unknown " << traffic.unknown() << "\n";

  EXPECT_TRUE(traffic.others().empty()) << "only applied, not applied (unavailable) or unknown outcomes: "
                                       << traffic.others().size() << " codes, first "
                                       << (traffic.others().empty() ? "" : catga::to_string(traffic.others().begin()->first));
  leader = c.cluster.leader();
  ASSERT_TRUE(leader);
  ASSERT_TRUE(c.cluster.converged(*leader));
  const std::int64_t final_balance = balance(c.cluster.app(*leader), account->id);
  const std::int64_t low = kInitial + static_cast<std::int64_t>(traffic.ok()) - withdrawn;
  EXPECT_GE(final_balance, low);
  EXPECT_LE(final_balance, low + static_cast<std::int64_t>(traffic.unknown()));
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.cluster.digest(i), c.cluster.digest(*leader)) << "node " << i + 1;
    const auto status = c.cluster.app(i).status();
    EXPECT_EQ(status.failure, "") << "node " << i + 1 << " stopped itself";
    EXPECT_EQ(status.apply_format, 2u);  // every member implements 1-2 (2: data directory identities)
    ASSERT_EQ(status.announcements.size(), 3u) << "node " << i + 1;
    for (const auto& a : status.announcements) {
      EXPECT_THAT(a.commands, ::testing::Contains("bank.withdraw.v1")) << "member " << a.id << " seen by " << i + 1;
    }
  }
}

TEST(RollingUpgrade, RemovingAnOldMemberWithdrawsItsAnnouncement) {
  UpgradableCluster c;
  // A running cluster (every member announced v1) upgrades nodes 1 and 2.
  // (Before node 3 has announced, nothing would block the new command: node
  // 3 would stop itself at it — the rule for members without announcements.)
  ASSERT_TRUE(wait_for([&] { return c.cluster.app(2).status().announcements.size() == 3; }));
  c.upgraded[0] = true;
  c.upgraded[1] = true;
  for (std::size_t i = 0; i < 2; ++i) {
    c.cluster.stop(i);
    c.cluster.start(i);
  }
  auto leader = c.cluster.leader();
  ASSERT_TRUE(leader);
  auto account = c.cluster.app(*leader).send(bank::Open{.owner = "remove", .initial = 10});
  ASSERT_THAT(account, IsOk());
  const std::size_t upgraded = *leader == 2 ? 0 : *leader;
  Result<std::int64_t> refused = 0;
  ASSERT_TRUE(wait_for([&] {
    refused = c.withdraw(upgraded, account->id);
    return !refused && std::string(refused.error().message()).find("by member 3 (") != std::string::npos;
  })) << (refused ? "accepted" : refused.error().to_string());

  // Node 3 stays on v1 and is removed instead (stopped first, as an operator would).
  if (*leader == 2) {
    ASSERT_THAT(c.cluster.app(2).transfer_leadership(1), IsOk());
    leader = c.cluster.leader();
    ASSERT_TRUE(leader);
  }
  c.cluster.stop(2);
  ASSERT_THAT(c.cluster.app(*leader).remove_member(3), IsOk());
  Result<std::int64_t> accepted = catga::Error{Code::unavailable, "not sent"};
  ASSERT_TRUE(wait_for([&] {
    accepted = c.withdraw(*leader, account->id);
    return accepted.has_value();
  })) << accepted.error().to_string();
  EXPECT_THAT(accepted, IsOkAndHolds(9));
  ASSERT_TRUE(c.cluster.converged(*leader));
}
