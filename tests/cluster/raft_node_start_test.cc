// RaftNode::start on a data directory it cannot use: invalid options, an
// unusable directory, a truncated segment, a garbage snapshot, another
// node's directory — each a clear error naming what is wrong.
#include "raft_node_fixture.hpp"

namespace catga::internal {
namespace {

using namespace raft_node_test;


// Runs a single node in `dir`, applies `n` records, stops it.
void populate(const fs::path& dir, int port, int n, std::uint64_t threshold = 8192) {
  DigestMachine m;
  auto node = RaftNode::start(single(dir, port, threshold), m);
  ASSERT_TRUE(node.has_value()) << describe(node.error());
  ASSERT_TRUE(wait_until([&] { return (*node)->status().ready; }));
  for (int i = 0; i < n; ++i) {
    std::promise<Result<Applied>> p;
    (*node)->propose("r" + std::to_string(i), [&](Result<Applied> r) { p.set_value(std::move(r)); });
    auto r = p.get_future().get();
    ASSERT_TRUE(r.has_value()) << describe(r.error());
  }
}

std::vector<fs::path> files_matching(const fs::path& dir, const std::function<bool(const std::string&)>& pred) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir))
    if (pred(e.path().filename().string())) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(RaftNodeStart, RejectsInvalidOptions) {
  DigestMachine m;
  ClusterOptions o;
  auto r = RaftNode::start(o, m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::invalid_argument);
  EXPECT_NE(r.error().message().find("node_id"), std::string::npos);
}

TEST(RaftNodeStart, RejectsUnusableDataDir) {
  TempDir tmp;
  const fs::path file = tmp.path() / "a-file";
  std::ofstream(file) << "x";
  DigestMachine m;
  auto r = RaftNode::start(single(file / "sub", testing::free_port()), m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::invalid_argument);
  EXPECT_NE(r.error().message().find("data_dir"), std::string::npos) << r.error().message();
  r = RaftNode::start(single(file, testing::free_port()), m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::invalid_argument);
}

TEST(RaftNodeStart, TruncatedSegmentFailsNamingTheFile) {
  TempDir tmp;
  const int port = testing::free_port();
  populate(tmp.path(), port, 50);
  auto segments = files_matching(tmp.path(), [](const std::string& n) {
    return n.rfind("open-", 0) == 0 || (n.size() > 16 && n[16] == '-' && isdigit(n[0]));
  });
  ASSERT_FALSE(segments.empty());
  // Garble the biggest segment in its middle.
  fs::path victim = segments.front();
  for (auto& s : segments)
    if (fs::file_size(s) > fs::file_size(victim)) victim = s;
  const auto size = fs::file_size(victim);
  {
    std::fstream io(victim, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(size / 2));
    std::string junk(64, '\xA5');
    io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  DigestMachine m;
  auto r = RaftNode::start(single(tmp.path(), port), m);
  ASSERT_FALSE(r.has_value()) << "started on a garbled segment";
  EXPECT_EQ(r.error().code(), Code::data_loss);
  EXPECT_NE(r.error().message().find(victim.filename().string()), std::string::npos) << r.error().message();
  std::cerr << "garbled segment -> " << describe(r.error()) << "\n";

  fs::resize_file(victim, size / 3);
  r = RaftNode::start(single(tmp.path(), port), m);
  ASSERT_FALSE(r.has_value()) << "started on a truncated segment";
  EXPECT_EQ(r.error().code(), Code::data_loss);
  EXPECT_NE(r.error().message().find(victim.filename().string()), std::string::npos) << r.error().message();
  std::cerr << "truncated segment -> " << describe(r.error()) << "\n";
}

TEST(RaftNodeStart, GarbageSnapshotFailsNamingTheFile) {
  TempDir tmp;
  const int port = testing::free_port();
  populate(tmp.path(), port, 40, /*threshold=*/8);
  auto snapshots = files_matching(tmp.path(), [](const std::string& n) {
    return n.rfind("snapshot-", 0) == 0 && n.find(".meta") == std::string::npos;
  });
  ASSERT_FALSE(snapshots.empty());
  for (auto& s : snapshots) {
    std::ofstream(s, std::ios::binary | std::ios::trunc) << std::string(100, 'G');
  }
  DigestMachine m;
  auto r = RaftNode::start(single(tmp.path(), port), m);
  ASSERT_FALSE(r.has_value()) << "started on a garbage snapshot";
  EXPECT_EQ(r.error().code(), Code::data_loss);
  bool named = false;
  for (auto& s : snapshots) named |= r.error().message().find(s.filename().string()) != std::string::npos;
  EXPECT_TRUE(named) << r.error().message();
  std::cerr << "garbage snapshot -> " << describe(r.error()) << "\n";
}

TEST(RaftNodeStart, AnotherNodesDirectoryIsAClearErrorAndAMovedAddressIsNot) {
  TempDir tmp;
  const int port = testing::free_port();
  populate(tmp.path(), port, 3);
  DigestMachine m;
  // Same directory, another node id.
  ClusterOptions other = single(tmp.path(), port);
  other.node_id = 5;
  other.members = {{5, "127.0.0.1:" + std::to_string(port)}};
  auto r = RaftNode::start(other, m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::failed_precondition);
  // The cluster marker names the directory's node first.
  EXPECT_NE(r.error().message().find("belongs to another node"), std::string::npos) << r.error().message();
  // A directory from before markers: the stored configuration says the same.
  std::filesystem::remove(tmp.path() / "catga-cluster");
  std::filesystem::remove(tmp.path() / "catga-data-dir");
  r = RaftNode::start(other, m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::failed_precondition);
  EXPECT_NE(r.error().message().find("node 5 is not in the stored configuration"), std::string::npos)
      << r.error().message();
  // Same id, another address: the node listens where its options say (the
  // stored address is only the view of whoever wrote the configuration).
  const int port2 = testing::free_port();
  DigestMachine m2;
  auto moved = RaftNode::start(single(tmp.path(), port2), m2);
  ASSERT_TRUE(moved.has_value()) << describe(moved.error());
  EXPECT_EQ((*moved)->status().address, "127.0.0.1:" + std::to_string(port2));
  EXPECT_TRUE(wait_until([&] { return m2.count() == 3 && (*moved)->status().ready; }));
  moved->reset();
  // The right options still work afterwards.
  DigestMachine m3;
  auto fine = RaftNode::start(single(tmp.path(), port), m3);
  ASSERT_TRUE(fine.has_value()) << describe(fine.error());
  EXPECT_TRUE(wait_until([&] { return m3.count() == 3; }));
}


}  // namespace
}  // namespace catga::internal
