// tests/cluster/raft_node_fixture.hpp — what the tests of real RaftNodes on
// 127.0.0.1 share (raft_node_test.cc, raft_node_membership_test.cc,
// raft_node_snapshot_test.cc, raft_node_log_bytes_test.cc,
// raft_node_start_test.cc): a cluster of nodes in one process, each with a
// durable log in a temporary directory and its own loop thread, and the
// helpers more than one of those files uses. Waits are bounded and generous;
// nothing asserts on timing.
#pragma once

#include "cluster/raft_node.hpp"
#include "cluster/entry_format.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/entry_format.hpp"
#include "cluster_test_support.hpp"
#include "support/blackhole_proxy.hpp"
#include "support/libraft_wire.hpp"

#include <cstdlib>
#include <iterator>

namespace catga::internal::raft_node_test {

using namespace std::chrono_literals;
using testing::DigestMachine;
using testing::describe;
using testing::lone_member;
using testing::TempDir;
using testing::wait_until;
namespace fs = std::filesystem;

struct Observed {
  std::mutex mu;
  std::vector<std::pair<NodeRole, std::uint64_t>> roles;
  std::vector<std::uint64_t> leaders;
  bool saw_role(NodeRole r) {
    std::lock_guard l(mu);
    for (auto& [role, term] : roles)
      if (role == r) return true;
    return false;
  }
  bool saw_leader(std::uint64_t id) {
    std::lock_guard l(mu);
    for (auto l2 : leaders)
      if (l2 == id) return true;
    return false;
  }
};

class Cluster {
 public:
  // The first `initial` members are bootstrapped; the rest join later.
  explicit Cluster(unsigned n, std::function<void(ClusterOptions&)> tweak = {}, unsigned initial = ~0u)
      : tweak_(std::move(tweak)), initial_(std::min(n, initial)) {
    for (unsigned i = 0; i < n; ++i) {
      members_.push_back(Member{i + 1, "127.0.0.1:" + std::to_string(testing::free_port())});
      dirs_.push_back(std::make_unique<TempDir>());
    }
    machines_.resize(n);
    nodes_.resize(n);
    observed_.resize(n);
    for (auto& o : observed_) o = std::make_unique<Observed>();
  }
  ~Cluster() {
    for (auto& n : nodes_) n.reset();
  }

  ClusterOptions options(unsigned i) const {
    ClusterOptions o;
    o.node_id = i + 1;
    o.members.assign(members_.begin(), members_.begin() + initial_);
    if (i >= initial_) o.members.push_back(members_[i]);
    o.data_dir = dirs_[i]->path();
    o.election_timeout = 1000ms;
    o.heartbeat_interval = 100ms;
    o.peer_secret = testsupport::kClusterSecret;  // the authenticated transport
    if (tweak_) tweak_(o);
    return o;
  }

  Result<void> start(unsigned i, JoinMode mode = JoinMode::bootstrap_if_empty,
                     std::unique_ptr<DigestMachine> machine = nullptr) {
    machines_[i] = machine != nullptr ? std::move(machine) : std::make_unique<DigestMachine>();
    RaftNodeCallbacks cb;
    Observed* obs = observed_[i].get();
    cb.on_role_changed = [obs](NodeRole r, std::uint64_t t) {
      std::lock_guard l(obs->mu);
      obs->roles.emplace_back(r, t);
    };
    cb.on_leader_changed = [obs](std::uint64_t id, const std::string&) {
      std::lock_guard l(obs->mu);
      obs->leaders.push_back(id);
    };
    auto r = RaftNode::start(options(i), *machines_[i], std::move(cb), mode);
    if (!r) return r.error();
    nodes_[i] = std::move(*r);
    return ok();
  }
  // Starts the first `count` nodes (all by default); the others join later.
  void start_all(unsigned count = ~0u) {
    for (unsigned i = 0; i < nodes_.size() && i < count; ++i) {
      auto r = start(i);
      ASSERT_TRUE(r.has_value()) << describe(r.error());
    }
  }
  void stop(unsigned i) { nodes_[i].reset(); }
  // Gives member i a new address in every node's options (restart to apply).
  void move(unsigned i) { members_[i].address = "127.0.0.1:" + std::to_string(testing::free_port()); }

  // Index of the ready leader, waiting for one.
  bool running(unsigned i) const { return nodes_[i] != nullptr; }
  std::optional<unsigned> ready_leader() {
    std::optional<unsigned> found;
    wait_until([&] {
      for (unsigned i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i] && nodes_[i]->status().role == NodeRole::leader && nodes_[i]->status().ready) {
          found = i;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  // Proposes and waits for the result.
  Result<Applied> propose_sync(unsigned i, std::string record) {
    std::promise<Result<Applied>> p;
    auto f = p.get_future();
    nodes_[i]->propose(std::move(record), [&p](Result<Applied> r) { p.set_value(std::move(r)); });
    if (f.wait_for(30s) != std::future_status::ready) return Error(Code::deadline_exceeded, "test timeout");
    return f.get();
  }

  // Proposes `n` records from `threads` threads, each padded with 'x' to at
  // least `size` bytes; returns the number that succeeded.
  int propose_many(unsigned i, int n, int threads, const std::string& prefix, std::size_t size = 0) {
    std::atomic<int> done{0}, succeeded{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        for (int k = t; k < n; k += threads) {
          std::string record = prefix + std::to_string(k);
          if (record.size() < size) record.resize(size, 'x');
          nodes_[i]->propose(std::move(record), [&](Result<Applied> r) {
            if (r) ++succeeded;
            ++done;
          });
        }
      });
    }
    for (auto& t : ts) t.join();
    EXPECT_TRUE(wait_until([&] { return done.load() == n; }, 60s)) << done.load() << " of " << n << " completed";
    return succeeded.load();
  }

  bool wait_all_applied(std::uint64_t count) {
    return wait_until(
        [&] {
          for (unsigned i = 0; i < nodes_.size(); ++i)
            if (nodes_[i] && machines_[i]->count() != count) return false;
          return true;
        },
        60s);
  }

  RaftNode& node(unsigned i) { return *nodes_[i]; }
  DigestMachine& machine(unsigned i) { return *machines_[i]; }
  Observed& observed(unsigned i) { return *observed_[i]; }
  const Member& member(unsigned i) const { return members_[i]; }
  const fs::path& dir(unsigned i) const { return dirs_[i]->path(); }
  unsigned size() const { return static_cast<unsigned>(nodes_.size()); }

 private:
  std::function<void(ClusterOptions&)> tweak_;
  unsigned initial_;
  std::vector<Member> members_;
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::vector<std::unique_ptr<DigestMachine>> machines_;
  std::vector<std::unique_ptr<RaftNode>> nodes_;
  std::vector<std::unique_ptr<Observed>> observed_;
};

// Starts every node and has `n` records (`prefix` + number) applied on all of
// them; false (and a test failure) if that did not work.
inline bool start_with_records(Cluster& c, int n, const std::string& prefix) {
  c.start_all();
  auto leader = c.ready_leader();
  EXPECT_TRUE(leader.has_value());
  if (!leader) return false;
  EXPECT_EQ(c.propose_many(*leader, n, 4, prefix), n);
  const bool applied = c.wait_all_applied(static_cast<std::uint64_t>(n));
  EXPECT_TRUE(applied);
  return applied;
}

// Frequent snapshots, one small record per entry: many entries.
inline void small_snapshots(ClusterOptions& o) {
  o.snapshot_threshold = 64;
  o.snapshot_trailing = 16;
  o.max_entry_bytes = 64;
}

// Starts `c` (small_snapshots), stops a follower and writes 400 records past
// it — 20 bytes each, one per 64-byte entry, so 400 entries. Returns the
// leader and the stopped follower.
inline std::optional<std::pair<unsigned, unsigned>> leave_a_follower_behind(Cluster& c) {
  c.start_all();
  auto leader = c.ready_leader();
  EXPECT_TRUE(leader.has_value());
  if (!leader) return std::nullopt;
  const unsigned l = *leader;
  const unsigned f = (l + 1) % 3;
  c.stop(f);
  EXPECT_EQ(c.propose_many(l, 400, 4, "snapshot-record-"), 400);
  return std::pair{l, f};
}

inline Result<void> wait_void(const std::function<void(RaftNode::VoidCompletion)>& call) {
  std::promise<Result<void>> p;
  call([&p](Result<void> r) { p.set_value(std::move(r)); });
  auto f = p.get_future();
  if (f.wait_for(60s) != std::future_status::ready) return Error(Code::deadline_exceeded, "test timeout");
  return f.get();
}

// One lone durable node in `dir`: snapshots every `threshold` entries, one
// small record per entry.
inline ClusterOptions single(const fs::path& dir, int port, std::uint64_t threshold = 8192) {
  ClusterOptions o = lone_member(dir, port);
  o.snapshot_threshold = threshold;
  o.snapshot_trailing = 4;
  o.max_entry_bytes = 64;
  return o;
}

}  // namespace catga::internal::raft_node_test
