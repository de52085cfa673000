// Where a consistent read's query runs. A read that must wait — for an apply
// to reach its index, for the leader to confirm its leadership — is woken by
// the Raft loop thread or the peer channel's thread; the query then runs on
// the caller's own thread when the call blocks, and on the node's read
// threads ("catga-read") for a callback-style call — never on the thread that
// woke it, where a heavy query would hold up heartbeats, applies or
// forwarding. A read servable when asked runs on the caller's thread.
#include <gtest/gtest.h>
#include <pthread.h>

#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "catga/testing.hpp"
#include "support/bank.hpp"
#include "support/cluster.hpp"

using catga::Consistency;
using catga::QueryOptions;
using namespace catga::testing;
using testsupport::LocalCluster;
using testsupport::wait_for;

namespace {

struct WhereAmI {
  using catga_message = catga::Query<std::string, "test.where-am-i.v1">;
  std::uint64_t nonce = 0;
  MSGPACK_DEFINE_MAP(nonce);
};

std::string this_thread_name() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

LocalCluster<bank::State> make_cluster() {
  return LocalCluster<bank::State>(3, [](catga::ApplicationBuilder<bank::State>& b, std::size_t) {
    bank::register_handlers(b).query<WhereAmI>(
        [](const bank::State&, const WhereAmI&) -> catga::Result<std::string> { return this_thread_name(); });
  });
}

}  // namespace

// The thread a callback-style query ran on (its handler reports it).
static std::string where_by_callback(catga::Application& app, std::uint64_t nonce, const QueryOptions& options) {
  std::promise<std::string> where;
  app.send(WhereAmI{nonce}, options,
           [&where](catga::Result<std::string> r) { where.set_value(r ? *r : "error: " + r.error().message()); });
  auto answered = where.get_future();
  if (answered.wait_for(std::chrono::seconds(30)) != std::future_status::ready) return "no answer";
  return answered.get();
}

TEST(ReadThreads, AWokenReadRunsOnTheCallerWhenItBlocksOnTheReadThreadsForACallback) {
  auto cluster = make_cluster();
  std::size_t leader = 0;
  const std::uint64_t account = bank::open_on_leader(cluster, leader, "threads");
  ASSERT_NE(account, 0u);
  const std::size_t follower = (leader + 1) % 3;
  const std::string caller = this_thread_name();
  ASSERT_NE(caller, "catga-read");
  const QueryOptions linearizable{.consistency = Consistency::linearizable};

  // Linearizable, on the leader (woken by its barrier, on the loop thread)
  // and on a follower (woken by the leader's read index, on the peer
  // channel's thread): a blocking call runs its query on the caller's
  // thread, a callback-style one on the read threads.
  for (std::size_t node : {leader, follower}) {
    auto where = cluster.app(node).send(WhereAmI{1}, linearizable);
    ASSERT_THAT(where, IsOk());
    EXPECT_EQ(*where, caller) << "node " << node + 1;
    EXPECT_EQ(where_by_callback(cluster.app(node), 2, linearizable), "catga-read") << "node " << node + 1;
  }

  // read_your_writes of an index the follower has applied: the caller's thread.
  auto receipt = cluster.app(leader).send_receipt(bank::Deposit{.account = account, .amount = 1});
  ASSERT_THAT(receipt.result, IsOk());
  ASSERT_TRUE(cluster.wait_applied(receipt.index));
  const QueryOptions applied{.consistency = Consistency::read_your_writes, .min_index = receipt.index};
  auto ready = cluster.app(follower).send(WhereAmI{3}, applied);
  ASSERT_THAT(ready, IsOk());
  EXPECT_EQ(*ready, caller);

  // read_your_writes of an index the follower has not applied yet (its loop
  // is frozen): woken by the apply, on the loop thread. The blocking call's
  // query runs on the caller's thread, the callback's on the read threads.
  cluster.pause(follower, std::chrono::milliseconds(1500));
  auto later = cluster.app(leader).send_receipt(bank::Deposit{.account = account, .amount = 1});
  ASSERT_THAT(later.result, IsOk());  // the leader and the other follower commit it
  const QueryOptions not_applied{.consistency = Consistency::read_your_writes, .min_index = later.index};
  std::promise<std::string> by_callback;
  cluster.app(follower).send(WhereAmI{4}, not_applied, [&by_callback](catga::Result<std::string> r) {
    by_callback.set_value(r ? *r : "error: " + r.error().message());
  });
  auto woken = cluster.app(follower).send(WhereAmI{5}, not_applied);
  ASSERT_THAT(woken, IsOk());
  EXPECT_EQ(*woken, caller);
  auto callback_answer = by_callback.get_future();
  ASSERT_EQ(callback_answer.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(callback_answer.get(), "catga-read");
}

// A blocking linearizable read made inside a callback's completion — on a
// read thread, inside a burst — is asked for at once and runs on that thread.
// Held back to the burst's end like a callback-style read started there, it
// waited for its own thread to finish the burst: it never completed.
TEST(ReadThreads, ABlockingReadInsideACallbacksCompletionIsAnswered) {
  auto cluster = make_cluster();
  std::size_t leader = 0;
  const std::uint64_t account = bank::open_on_leader(cluster, leader, "inside");
  ASSERT_NE(account, 0u);
  const QueryOptions linearizable{.consistency = Consistency::linearizable};
  for (std::size_t node : {leader, (leader + 1) % 3}) {
    auto& app = cluster.app(node);
    std::promise<std::pair<std::string, std::string>> answers;  // (outer thread, inner read's answer)
    app.send(WhereAmI{1}, linearizable, [&](catga::Result<std::string> outer) {
      auto inner = app.send(WhereAmI{2}, linearizable);
      answers.set_value({outer ? *outer : outer.error().message(), inner ? *inner : inner.error().message()});
    });
    auto answered = answers.get_future();
    ASSERT_EQ(answered.wait_for(std::chrono::seconds(30)), std::future_status::ready) << "node " << node + 1;
    const auto [outer, inner] = answered.get();
    EXPECT_EQ(outer, "catga-read") << "node " << node + 1;
    EXPECT_EQ(inner, "catga-read") << "node " << node + 1;  // the thread that blocked: the caller
  }
}

// A caller that sends its next read from the previous one's completion does so
// on a read thread, inside a burst. The linearizable reads a burst starts ask
// the leader for one barrier together once the burst has run: they are all
// answered, on the read threads, and see a write that completed before they
// started (a barrier serves only reads that arrived before it was issued;
// theirs is issued after). Asked one by one, each of these reads — started a
// few milliseconds apart — had a barrier, a log entry, of its own.
TEST(ReadThreads, ReadsStartedInOneBurstShareOneBarrierAndSeeEarlierWrites) {
  auto cluster = make_cluster();
  std::size_t leader = 0;
  const std::uint64_t account = bank::open_on_leader(cluster, leader, "burst");
  ASSERT_NE(account, 0u);
  auto& app = cluster.app(leader);
  ASSERT_TRUE(cluster.converged(leader));
  const auto before = app.status();

  constexpr int kReads = 16;
  const QueryOptions linearizable{.consistency = Consistency::linearizable};
  std::mutex mu;
  std::vector<std::pair<std::string, catga::Result<bank::Account>>> answers;
  std::promise<void> all_answered;
  std::promise<std::string> root_thread;
  app.send(WhereAmI{1}, linearizable, [&](catga::Result<std::string> where) {
    root_thread.set_value(where ? *where : where.error().message());
    // On a read thread, inside a burst: a write completes, then the reads start.
    auto deposit = app.send(bank::Deposit{.account = account, .amount = 7});
    EXPECT_THAT(deposit, IsOk());
    for (int i = 0; i < kReads; ++i) {
      app.send(bank::GetAccount{.account = account}, linearizable, [&](catga::Result<bank::Account> a) {
        std::lock_guard lock(mu);
        answers.emplace_back(this_thread_name(), std::move(a));
        if (answers.size() == kReads) all_answered.set_value();
      });
      // Room for the loop to pick up each read by itself, were it asked for at once.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  EXPECT_EQ(root_thread.get_future().get(), "catga-read");
  ASSERT_EQ(all_answered.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  for (const auto& [thread, a] : answers) {
    EXPECT_EQ(thread, "catga-read");
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(a->balance, 7);
  }

  // Entries this leader committed that it did not append for commands (its
  // counters count those): its barriers. Two — the root read's and the
  // burst's — once the commands it appended meanwhile have committed too.
  // A few more may be counted (4 once in some 30 runs): the status is a
  // snapshot the loop thread refreshes, and entries on their way when
  // counting began count here. Asked one by one, the 16 reads made 17.
  auto barriers_since = [&before](const catga::NodeStatus& now) {
    return static_cast<std::int64_t>(now.commit_index - before.commit_index) -
           static_cast<std::int64_t>(now.counters.entries_appended - before.counters.entries_appended);
  };
  catga::NodeStatus after;
  ASSERT_TRUE(wait_for([&] {
    after = app.status();
    return barriers_since(after) >= 2;
  })) << "barriers counted: " << barriers_since(after);
  ASSERT_EQ(after.leader_id, before.leader_id);
  EXPECT_LE(barriers_since(after), 6) << "commit " << before.commit_index << " -> " << after.commit_index
                                       << ", entries appended " << before.counters.entries_appended << " -> "
                                       << after.counters.entries_appended;
}
