// Snapshots encoded by a forked child (ClusterOptions::snapshot_in_child): a
// real one-member RaftNode on 127.0.0.1, records proposed in order by one
// thread. The state machine checks on every apply that the records arrive as
// 1, 2, 3, … — so a snapshot that held more or less than the state at its
// index would show up as a gap or a repeat when a restart replays the log
// after it. Waits are bounded; nothing asserts on timing.
#include "cluster/raft_node.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catga/detail/snapshot_sink.hpp"
#include "cluster_test_support.hpp"

namespace catga::internal {
namespace {

using namespace std::chrono_literals;
using testing::describe;
using testing::lone_member;
using testing::TempDir;
using testing::wait_until;

// Records are decimal numbers. State: every value applied, in order.
class SequenceMachine : public RecordStateMachine {
 public:
  enum class InChild { encode, throw_error, kill_itself, hang };

  explicit SequenceMachine(InChild mode = InChild::encode, std::string pid_file = {})
      : mode_(mode), pid_file_(std::move(pid_file)) {}

  std::string apply(const ApplyInfo&, std::string_view record) override {
    std::uint64_t v = 0;
    std::from_chars(record.data(), record.data() + record.size(), v);
    const std::uint64_t last = values_.empty() ? 0 : values_.back();
    if (v != last + 1) ++violations_;
    values_.push_back(v);
    count_.store(values_.size());
    return "ok";
  }
  std::string snapshot() override {
    std::string out;
    detail::StringSnapshotSink sink(out);
    encode(sink);
    return out;
  }
  Result<void> restore(std::string_view s) override {
    if (s.size() % 8 != 0) return Error(Code::data_loss, "bad snapshot size " + std::to_string(s.size()));
    values_.resize(s.size() / 8);
    if (!s.empty()) std::memcpy(values_.data(), s.data(), s.size());
    count_.store(values_.size());
    ++restores_;
    return ok();
  }
  bool can_snapshot_in_child() const override { return true; }
  void write_snapshot(detail::SnapshotSink& sink) override {
    switch (mode_) {
      case InChild::encode: break;
      case InChild::throw_error: throw std::runtime_error("the test's state cannot be encoded");
      case InChild::kill_itself:
        ::raise(SIGKILL);  // as the kernel's out-of-memory killer would
        ::_exit(9);
      case InChild::hang: {
        std::ofstream(pid_file_) << ::getpid() << "\n";
        for (;;) ::pause();
      }
    }
    encode(sink);
  }

  std::uint64_t count() const { return count_.load(); }
  int violations() const { return violations_.load(); }
  int restores() const { return restores_.load(); }

 private:
  void encode(detail::SnapshotSink& sink) const {
    sink.write(reinterpret_cast<const char*>(values_.data()), values_.size() * 8);
  }

  InChild mode_;
  std::string pid_file_;
  std::vector<std::uint64_t> values_;  // loop thread only
  std::atomic<std::uint64_t> count_{0};
  std::atomic<int> violations_{0};
  std::atomic<int> restores_{0};
};

ClusterOptions snapshotting(const std::filesystem::path& dir, int port) {
  ClusterOptions o = lone_member(dir, port);
  o.snapshot_threshold = 64;  // entries: a snapshot every few batches
  o.snapshot_trailing = 16;
  o.snapshot_growth_percent = 0;
  o.max_entry_bytes = 256;  // ~20 records an entry: many entries however the load
  return o;
}

// Proposes first..last in order from this thread; waits until all applied.
void propose_sequence(RaftNode& node, const SequenceMachine& m, std::uint64_t first, std::uint64_t last) {
  std::atomic<std::uint64_t> failed{0};
  for (std::uint64_t v = first; v <= last; ++v) {
    node.propose(std::to_string(v), [&failed](Result<Applied> r) {
      if (!r) ++failed;
    });
    if (v % 200 == 0) std::this_thread::sleep_for(1ms);  // many entries, not one huge batch
  }
  EXPECT_TRUE(wait_until([&] { return m.count() >= last || failed.load() > 0; }, 60s));
  EXPECT_EQ(failed.load(), 0u);
}

TEST(SnapshotInChild, SnapshotIsTheStateAtItsIndexWhileApplyingGoesOn) {
  TempDir tmp;
  const ClusterOptions o = snapshotting(tmp.path(), testing::free_port());
  constexpr std::uint64_t kRecords = 30'000;
  {
    SequenceMachine m;
    auto node = RaftNode::start(o, m);
    ASSERT_TRUE(node.has_value()) << describe(node.error());
    ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
    propose_sequence(**node, m, 1, kRecords);
    ASSERT_TRUE(wait_until([&] { return (*node)->status().counters.snapshots_in_child >= 2; }))
        << "snapshots taken " << (*node)->status().counters.snapshots_taken;
    const NodeStatus st = (*node)->status();
    EXPECT_EQ(st.counters.snapshots_in_child, st.counters.snapshots_taken) << "every snapshot forked";
    EXPECT_GT(st.counters.snapshot_bytes, 0u);
    EXPECT_EQ(st.failure, "");
    EXPECT_EQ(m.violations(), 0);
  }
  // A fresh machine: the newest snapshot, then the log after it.
  SequenceMachine m;
  auto node = RaftNode::start(o, m);
  ASSERT_TRUE(node.has_value()) << describe(node.error());
  ASSERT_TRUE(wait_until([&] { return m.count() == kRecords; })) << m.count();
  EXPECT_EQ(m.restores(), 1);
  EXPECT_EQ(m.violations(), 0) << "the snapshot held more or less than the state at its index";
  // And it keeps going from there.
  propose_sequence(**node, m, kRecords + 1, kRecords + 1000);
  EXPECT_EQ(m.violations(), 0);
}

// A child that fails leaves libraft waiting for a snapshot it cannot be told
// has failed: the node stops itself, naming the cause; a restart recovers.
void expect_stops_and_recovers(SequenceMachine::InChild mode, const std::string& why) {
  TempDir tmp;
  const ClusterOptions o = snapshotting(tmp.path(), testing::free_port());
  std::uint64_t applied = 0;
  {
    SequenceMachine m(mode);
    auto node = RaftNode::start(o, m);
    ASSERT_TRUE(node.has_value()) << describe(node.error());
    ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
    std::atomic<int> done{0};
    for (int v = 1; v <= 5000; ++v) {
      (*node)->propose(std::to_string(v), [&done](Result<Applied>) { ++done; });
      if (v % 200 == 0) std::this_thread::sleep_for(1ms);
    }
    ASSERT_TRUE(wait_until([&] { return !(*node)->status().failure.empty(); }));
    EXPECT_NE((*node)->status().failure.find(why), std::string::npos) << (*node)->status().failure;
    ASSERT_TRUE(wait_until([&] { return done.load() == 5000; })) << "every proposal completes";
    applied = m.count();
    EXPECT_EQ(m.violations(), 0);
  }
  SequenceMachine m;
  auto node = RaftNode::start(o, m);
  ASSERT_TRUE(node.has_value()) << describe(node.error());
  ASSERT_TRUE(wait_until([&] { return m.count() >= applied && (*node)->status().ready; })) << m.count();
  EXPECT_EQ(m.violations(), 0);
}

TEST(SnapshotInChild, ChildThatThrowsStopsTheNodeAndARestartRecovers) {
  expect_stops_and_recovers(SequenceMachine::InChild::throw_error,
                            "writing a snapshot failed: snapshot child: the test's state cannot be encoded");
}

TEST(SnapshotInChild, ChildKilledLikeByTheOomKillerStopsTheNodeAndARestartRecovers) {
  expect_stops_and_recovers(SequenceMachine::InChild::kill_itself, "killed by signal 9");
}

TEST(SnapshotInChild, StoppingTheNodeKillsAndReapsARunningChild) {
  TempDir tmp;
  const std::string pid_file = (tmp.path() / "child.pid").string();
  const ClusterOptions o = snapshotting(tmp.path() / "data", testing::free_port());
  SequenceMachine m(SequenceMachine::InChild::hang, pid_file);
  pid_t child = 0;
  {
    auto node = RaftNode::start(o, m);
    ASSERT_TRUE(node.has_value()) << describe(node.error());
    ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
    for (int v = 1; v <= 3000; ++v) (*node)->propose(std::to_string(v), [](Result<Applied>) {});
    ASSERT_TRUE(wait_until([&] {
      std::ifstream in(pid_file);
      return static_cast<bool>(in >> child) && child > 0;
    }));
    // Applying goes on while the child hangs.
    ASSERT_TRUE(wait_until([&] { return m.count() == 3000; }));
    EXPECT_EQ((*node)->status().failure, "");
  }  // the node stops here
  EXPECT_EQ(::kill(child, 0), -1) << "child " << child << " still exists after the node stopped";
  EXPECT_EQ(errno, ESRCH);
}

TEST(SnapshotInChild, OffEncodesOnTheLoopThread) {
  TempDir tmp;
  ClusterOptions o = snapshotting(tmp.path(), testing::free_port());
  o.snapshot_in_child = false;
  SequenceMachine m(SequenceMachine::InChild::throw_error);  // would fail if forked
  auto node = RaftNode::start(o, m);
  ASSERT_TRUE(node.has_value()) << describe(node.error());
  ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
  propose_sequence(**node, m, 1, 5000);
  ASSERT_TRUE(wait_until([&] { return (*node)->status().counters.snapshots_taken >= 1; }));
  EXPECT_EQ((*node)->status().counters.snapshots_in_child, 0u);
  EXPECT_EQ((*node)->status().failure, "");
}

// ---- the sink ------------------------------------------------------------------

// Emits in small pieces so reserved gaps end up on both sides of a flush.
TEST(SnapshotSink, PatchReachesBytesAlreadyEmittedAndBytesStillBuffered) {
  std::string out;
  {
    detail::StringSnapshotSink sink(out);
    const std::string body(100'000, 'b');  // larger than the buffer: emitted before its header is patched
    detail::write_bin32(sink, [&] { sink.write(body.data(), body.size()); });
    detail::write_bin32(sink, [&] { sink.write("tail", 4); });  // patched while still buffered
    EXPECT_EQ(sink.position(), 5 + 100'000 + 5 + 4u);
  }
  ASSERT_EQ(out.size(), 5 + 100'000 + 5 + 4u);
  EXPECT_EQ(out.substr(0, 5), std::string("\xc6\x00\x01\x86\xa0", 5));
  EXPECT_EQ(out.substr(100'005, 5), std::string("\xc6\x00\x00\x00\x04", 5));
  EXPECT_EQ(out.substr(100'010), "tail");
}

}  // namespace
}  // namespace catga::internal

TEST(SnapshotInChild, SlowForkAdvisesHugePagesOnceTheyAreMissing) {
  using std::chrono::milliseconds;
  using catga::internal::SnapshotChild;
  const std::string madvise = "always [madvise] never\n";
  EXPECT_EQ(SnapshotChild::huge_page_advice(milliseconds(3), madvise, ""), "");
  const std::string ask = SnapshotChild::huge_page_advice(milliseconds(12), madvise, "");
  EXPECT_NE(ask.find("took 12 ms"), std::string::npos) << ask;
  EXPECT_NE(ask.find("GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1"), std::string::npos) << ask;
  EXPECT_EQ(SnapshotChild::huge_page_advice(milliseconds(12), madvise,
                                            "glibc.malloc.arena_max=1:glibc.malloc.hugetlb=1"),
            "");
  const std::string off = SnapshotChild::huge_page_advice(milliseconds(12), "always madvise [never]\n", "");
  EXPECT_NE(off.find("transparent huge pages are off"), std::string::npos) << off;
}
