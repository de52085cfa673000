// Real RaftNodes on 127.0.0.1 (raft_node_fixture.hpp): logs bounded in bytes
// on disk — snapshots taken on the bytes written since the last one, the
// entries kept behind a snapshot counted in bytes, and a restart's replay
// counted toward the threshold.
#include "raft_node_fixture.hpp"

namespace catga::internal {
namespace {

using namespace raft_node_test;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
// libraft 0.22.1 preallocates open segments of 8 MiB (UV__MAX_SEGMENT_SIZE)
// and keeps a pool of 2 prepared ones next to the one being written; a
// snapshot closes the one being written while the next is already open.
constexpr std::uint64_t kOpenSegmentBytes = 8 * kMiB;
constexpr unsigned kMaxOpenSegments = 4;

// What a data directory holds, by libraft's file names. Files may vanish
// while it is listed (a snapshot deletes segments): those are skipped.
struct DirUsage {
  std::uint64_t total = 0;            // every file
  std::uint64_t closed_bytes = 0;     // closed segments "FIRST-LAST"
  unsigned open_segments = 0;         // "open-N", preallocated
  std::uint64_t first_index = 0;      // lowest index in a closed segment (0: none)
  std::uint64_t snapshot_index = 0;   // newest "snapshot-TERM-INDEX-TIMESTAMP"
};

DirUsage dir_usage(const fs::path& dir) {
  DirUsage u;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    const std::uint64_t size = fs::file_size(it->path(), size_ec);
    if (size_ec) continue;
    const std::string name = it->path().filename().string();
    u.total += size;
    unsigned long long first = 0, last = 0, term = 0, index = 0, ts = 0;
    int consumed = 0;
    if (name.rfind("open-", 0) == 0) {
      ++u.open_segments;
    } else if (std::sscanf(name.c_str(), "%16llu-%16llu%n", &first, &last, &consumed) == 2 &&
               static_cast<std::size_t>(consumed) == name.size()) {
      u.closed_bytes += size;
      if (u.first_index == 0 || first < u.first_index) u.first_index = first;
    } else if (std::sscanf(name.c_str(), "snapshot-%llu-%llu-%llu%n", &term, &index, &ts, &consumed) == 3 &&
               static_cast<std::size_t>(consumed) == name.size()) {
      u.snapshot_index = std::max<std::uint64_t>(u.snapshot_index, index);
    }
  }
  return u;
}

// Samples the data directories of a cluster until destroyed: the largest
// usage seen, so the bound is checked while entries are written and
// snapshots taken, not only at rest.
class DirSampler {
 public:
  explicit DirSampler(std::vector<fs::path> dirs) : dirs_(std::move(dirs)), max_(dirs_.size()) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        sample();
        std::this_thread::sleep_for(10ms);
      }
    });
  }
  ~DirSampler() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    sample();
  }
  const DirUsage& max(unsigned i) const { return max_[i]; }

 private:
  void sample() {
    for (std::size_t i = 0; i < dirs_.size(); ++i) {
      const DirUsage u = dir_usage(dirs_[i]);
      max_[i].total = std::max(max_[i].total, u.total);
      max_[i].closed_bytes = std::max(max_[i].closed_bytes, u.closed_bytes);
      max_[i].open_segments = std::max(max_[i].open_segments, u.open_segments);
    }
  }
  std::vector<fs::path> dirs_;
  std::vector<DirUsage> max_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void bytes_bounded(ClusterOptions& o) {
  o.snapshot_threshold = 1'000'000;  // out of reach: only bytes trigger snapshots
  o.snapshot_threshold_bytes = kMiB;
  o.snapshot_trailing_bytes = 256 << 10;
  o.max_entry_bytes = 64 << 10;
  o.max_entries_in_flight = 4;
}

TEST(RaftNode, ByteThresholdBoundsEveryNodesLogOnDiskAndRestartRestoresTheState) {
  Cluster c(3, bytes_bounded);
  const ClusterOptions o = c.options(0);
  c.start_all();
  auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  DirSampler sampler({c.dir(0), c.dir(1), c.dir(2)});

  constexpr int kRecords = 1536;
  constexpr std::size_t kRecordBytes = 8 << 10;  // 12 MiB in all
  EXPECT_EQ(c.propose_many(*leader, kRecords, 8, "big-", kRecordBytes), kRecords);
  ASSERT_TRUE(c.wait_all_applied(kRecords));
  // Heartbeats give libraft its check after the last apply pass.
  ASSERT_TRUE(wait_until([&] {
    for (unsigned i = 0; i < 3; ++i)
      if (c.node(i).status().bytes_since_snapshot >= o.snapshot_threshold_bytes) return false;
    return true;
  }));
  sampler.stop();

  // The log kept on disk, at any moment: the closed segment the last
  // snapshot's trailing entries fall into, the one closed by the snapshot
  // being written, and the entries since; each holds about a threshold's
  // worth plus what was in flight when the snapshot was triggered and put.
  const std::uint64_t segment_bound =
      o.snapshot_threshold_bytes + (o.max_entries_in_flight + 1) * std::uint64_t{o.max_entry_bytes};
  const std::uint64_t closed_bound = 3 * segment_bound;
  const std::uint64_t total_bound = closed_bound + kMaxOpenSegments * kOpenSegmentBytes + kMiB;
  ASSERT_GT(std::uint64_t{kRecords} * kRecordBytes, 2 * closed_bound) << "too little written to tell";
  const std::uint64_t digest = c.machine(*leader).digest();
  for (unsigned i = 0; i < 3; ++i) {
    const NodeStatus st = c.node(i).status();
    EXPECT_GE(st.counters.snapshots_taken, 4u) << "node " << i + 1;
    EXPECT_GT(st.last_snapshot_index, 0u) << "node " << i + 1;
    EXPECT_EQ(c.machine(i).digest(), digest) << "node " << i + 1;
    const DirUsage& seen = sampler.max(i);
    std::cerr << "node " << i + 1 << ": " << st.counters.snapshots_taken << " snapshots, at most "
              << seen.closed_bytes << " bytes of closed segments, " << seen.open_segments << " open segments, "
              << seen.total << " bytes in all\n";
    EXPECT_LE(seen.closed_bytes, closed_bound) << "node " << i + 1;
    EXPECT_LE(seen.open_segments, kMaxOpenSegments) << "node " << i + 1;
    EXPECT_LE(seen.total, total_bound) << "node " << i + 1;
  }

  for (unsigned i = 0; i < 3; ++i) c.stop(i);
  c.start_all();  // fresh state machines: snapshot + trimmed log
  ASSERT_TRUE(c.ready_leader().has_value());
  ASSERT_TRUE(c.wait_all_applied(kRecords));
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(c.machine(i).digest(), digest) << "node " << i + 1;
    EXPECT_GE(c.machine(i).restores(), 1) << "node " << i + 1;
  }
}
// A lone node writing one 60 KiB record per 64 KiB entry.
ClusterOptions lone_large_entries(const fs::path& dir, int port) {
  ClusterOptions o = single(dir, port);
  bytes_bounded(o);
  o.snapshot_trailing = 32;
  o.snapshot_trailing_bytes = 128 << 10;  // two entries
  return o;
}

std::string large_record(int i) { return std::string(60 << 10, 'L') + std::to_string(i); }

void propose_large(RaftNode& node, int from, int to) {
  for (int i = from; i < to; ++i) {
    std::promise<Result<Applied>> p;
    node.propose(large_record(i), [&](Result<Applied> r) { p.set_value(std::move(r)); });
    auto r = p.get_future().get();
    ASSERT_TRUE(r.has_value()) << describe(r.error());
  }
}

TEST(RaftNode, TrailingBytesKeepFewerEntriesThanSnapshotTrailingWhenEntriesAreLarge) {
  TempDir tmp;
  const int port = testing::free_port();
  const ClusterOptions o = lone_large_entries(tmp.path(), port);
  constexpr int kRecords = 100;
  {
    DigestMachine m;
    auto node = RaftNode::start(o, m);
    ASSERT_TRUE(node.has_value()) << describe(node.error());
    ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
    propose_large(**node, 0, kRecords);
    ASSERT_TRUE(wait_until([&] { return (*node)->status().bytes_since_snapshot < o.snapshot_threshold_bytes; }));
    EXPECT_GE((*node)->status().counters.snapshots_taken, 4u);
  }  // stopped: nothing moves on disk any more

  // Every entry up to a snapshot is in a closed segment (a snapshot closes
  // the open ones), and libraft deletes whole closed segments that end before
  // the trailing entries. With a trailing of 32 entries it would keep at
  // least 32 behind the snapshot; at ~60 KiB per entry, 128 KiB are 2.
  const DirUsage u = dir_usage(tmp.path());
  ASSERT_GT(u.snapshot_index, 2u * o.snapshot_trailing) << "too few entries to tell";
  ASSERT_GT(u.first_index, 0u);
  ASSERT_LE(u.first_index, u.snapshot_index);
  const std::uint64_t kept = u.snapshot_index - u.first_index + 1;
  std::cerr << "snapshot at " << u.snapshot_index << ", log from " << u.first_index << ": " << kept
            << " entries kept behind it\n";
  EXPECT_LT(kept, o.snapshot_trailing);
  EXPECT_GE(kept, 2u);

  // The trimmed log still loads.
  DigestMachine m;
  auto node = RaftNode::start(o, m);
  ASSERT_TRUE(node.has_value()) << describe(node.error());
  EXPECT_TRUE(wait_until([&] { return m.count() == kRecords; }));
  EXPECT_EQ(m.restores(), 1);
}

TEST(RaftNode, RestartReplayCountsTowardTheByteThreshold) {
  TempDir tmp;
  const int port = testing::free_port();
  const ClusterOptions o = lone_large_entries(tmp.path(), port);
  constexpr int kBelow = 12;  // 12 x ~60 KiB: below 1 MiB, no snapshot
  std::uint64_t bytes = 0;
  for (int i = 0; i < kBelow; ++i) bytes += record_batch_size(1, large_record(i).size());
  ASSERT_LT(bytes, o.snapshot_threshold_bytes);
  {
    DigestMachine m;
    auto node = RaftNode::start(o, m);
    ASSERT_TRUE(node.has_value()) << describe(node.error());
    ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
    propose_large(**node, 0, kBelow);
    EXPECT_TRUE(wait_until([&] { return (*node)->status().bytes_since_snapshot == bytes; }))
        << (*node)->status().bytes_since_snapshot << " != " << bytes;
    EXPECT_EQ((*node)->status().counters.snapshots_taken, 0u);
  }

  DigestMachine m;
  auto node = RaftNode::start(o, m);
  ASSERT_TRUE(node.has_value()) << describe(node.error());
  ASSERT_TRUE(wait_until([&] { return m.count() == kBelow && (*node)->status().ready; }));
  EXPECT_TRUE(wait_until([&] { return (*node)->status().bytes_since_snapshot == bytes; }))
      << "the replayed log counts: " << (*node)->status().bytes_since_snapshot << " != " << bytes;
  // The entries that cross 1 MiB together with the replayed ones; alone they
  // stay far below it.
  int more = 0;
  std::uint64_t added = 0;
  while (bytes + added < o.snapshot_threshold_bytes) added += record_batch_size(1, large_record(kBelow + more++).size());
  ASSERT_LT(added, o.snapshot_threshold_bytes / 2);
  propose_large(**node, kBelow, kBelow + more);
  EXPECT_TRUE(wait_until([&] { return (*node)->status().counters.snapshots_taken >= 1; }))
      << "bytes since snapshot " << (*node)->status().bytes_since_snapshot << ", applied "
      << (*node)->status().applied_index << ", commit " << (*node)->status().commit_index;
  EXPECT_EQ(m.restores(), 0) << "no snapshot before the restart";
}

}  // namespace
}  // namespace catga::internal
