// tests/cluster/disk_fault_fixture.hpp — what the disk-fault tests share
// (disk_fault_test.cc: one node; disk_fault_cluster_test.cc: three nodes;
// disk_fault_libraft_test.cc: libraft's own bugs without Catga's guards;
// disk_fault_application_test.cc: the Application). Each test loop-mounts its
// own small ext4 image (small_disk.hpp) and skips, saying why, where mounting
// is impossible (not root, no loop devices). Every wait is bounded; nothing
// asserts on timing.
//
// What libraft 0.22.1 does, and what these tests pin down (docs/guarantees.md,
// "Disk faults"):
//   - it preallocates its log in 8 MiB segments and, as leader, refuses new
//     entries (RAFT_NOSPACE) while it or a majority of voters hold less than
//     4 MiB of preallocated log; a failed preallocation is retried every 5 s,
//     so a node recovers by itself once space is freed;
//   - a failed write *into* a segment (EIO) is retried from the wrong timer and
//     crashes the process 5 s later: Catga stops the node first
//     (DiskFaultKnownBugs shows the crash without that).
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cluster/raft_node.hpp"
#include "cluster_test_support.hpp"
#include "small_disk.hpp"

namespace catga::internal::disk_fault_test {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using testing::describe;
using testing::lone_member;
using testing::SmallDisk;
using testing::wait_until;
namespace fs = std::filesystem;

#define MOUNT_OR_SKIP(var, mib)                 \
  std::string why_##var;                        \
  auto var = SmallDisk::create(mib, why_##var); \
  if (!var) GTEST_SKIP() << why_##var

constexpr unsigned kDiskMiB = 64;  // room for libraft's 3 x 8 MiB segments, and more

// Remembers every applied record, in order; snapshots carry them all.
class RecordingMachine : public RecordStateMachine {
 public:
  std::string apply(const ApplyInfo&, std::string_view record) override {
    std::lock_guard l(mu_);
    records_.emplace_back(record);
    return "ok";
  }
  std::string snapshot() override {
    std::lock_guard l(mu_);
    std::string out;
    for (auto& r : records_) out += std::to_string(r.size()) + ":" + r;
    return out;
  }
  Result<void> restore(std::string_view s) override {
    std::lock_guard l(mu_);
    records_.clear();
    while (!s.empty()) {
      const auto colon = s.find(':');
      if (colon == std::string_view::npos) return Error(Code::data_loss, "bad snapshot");
      const auto n = std::stoull(std::string(s.substr(0, colon)));
      records_.emplace_back(s.substr(colon + 1, n));
      s.remove_prefix(colon + 1 + n);
    }
    return ok();
  }
  std::vector<std::string> records() const {
    std::lock_guard l(mu_);
    return records_;
  }
  std::size_t count() const {
    std::lock_guard l(mu_);
    return records_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> records_;
};

// What callers were told, to check against what a node applied.
struct Ledger {
  std::vector<std::string> acknowledged;  // in acknowledgement order
  std::set<std::string> refused;          // definite failures: must never apply
  std::set<std::string> unknown;          // outcome unknown: at most once

  void record(const std::string& r, const Result<Applied>& result) {
    if (result) acknowledged.push_back(r);
    else if (result.error().outcome_unknown()) unknown.insert(r);
    else refused.insert(r);
  }
  // Every acknowledged record applied once, in order; nothing refused applied;
  // nothing applied twice.
  void check(const std::vector<std::string>& applied, const std::string& who) const {
    std::map<std::string, int> times;
    for (auto& r : applied) times[r]++;
    for (auto& [r, n] : times) EXPECT_EQ(n, 1) << who << ": " << r.substr(0, 12) << " applied " << n << " times";
    std::size_t pos = 0;
    for (auto& a : acknowledged) {
      while (pos < applied.size() && applied[pos] != a) ++pos;
      EXPECT_LT(pos, applied.size()) << who << ": acknowledged " << a.substr(0, 12) << " missing (or out of order)";
      if (pos == applied.size()) return;
    }
    for (auto& r : refused) EXPECT_EQ(times.count(r), 0u) << who << ": refused " << r.substr(0, 12) << " was applied";
  }
};

inline Result<Applied> propose_sync(RaftNode& node, std::string record, std::chrono::seconds limit = 30s) {
  auto p = std::make_shared<std::promise<Result<Applied>>>();
  auto f = p->get_future();
  node.propose(std::move(record), [p](Result<Applied> r) { p->set_value(std::move(r)); });
  if (f.wait_for(limit) != std::future_status::ready) return Error(Code::unknown, "test: no answer within the limit");
  return f.get();
}

// 32 KiB records: 64 MiB of them is more than the disk holds.
inline std::string big_record(const std::string& tag) { return tag + ":" + std::string(32 << 10, 'x'); }
constexpr int kEnoughToFillTheDisk = 2 * kDiskMiB * 1024 / 32;

}  // namespace catga::internal::disk_fault_test
