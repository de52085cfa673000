// The data directory rules (docs/operations.md, "Data directory rules"), one
// at a time on a lone RaftNode in a temporary directory: the cluster marker a
// first start writes, and each directory a start refuses or adopts. The
// rules' stories on 3-node clusters: data_dir_rules_test.cc.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "catga/testing.hpp"
#include "cluster_test_support.hpp"
#include "cluster/data_dir_marker.hpp"

using namespace catga::testing;
namespace fs = std::filesystem;

namespace {

using catga::internal::JoinMode;
using catga::internal::RaftNode;

catga::Result<std::unique_ptr<RaftNode>> start_node(const catga::ClusterOptions& o, DigestMachine& machine,
                                                    JoinMode mode = JoinMode::bootstrap_if_empty) {
  return RaftNode::start(o, machine, {}, mode);
}

// Starts a lone member in `dir` once (bootstrapped, marker written) and stops it.
catga::ClusterOptions started_once(const fs::path& dir) {
  auto o = lone_member(dir, testsupport::free_port());
  DigestMachine machine;
  auto node = start_node(o, machine);
  EXPECT_THAT(node, IsOk());
  return o;
}

}  // namespace

TEST(DataDirRules, AFirstStartWritesTheMarker) {
  TempDir dir;
  auto o = started_once(dir.path());
  auto marker = catga::internal::read_marker(dir.path());
  ASSERT_THAT(marker, IsOk());
  ASSERT_TRUE(marker->has_value());
  EXPECT_EQ((*marker)->cluster_id, "catga");
  EXPECT_EQ((*marker)->node_id, 1u);
  EXPECT_EQ((*marker)->state, catga::internal::JoinState::bootstrapped);
  DigestMachine machine;
  EXPECT_THAT(start_node(o, machine), IsOk());  // and a restart accepts it
}

TEST(DataDirRules, AFreshFileSystemWithLostAndFoundIsAnEmptyDirectory) {
  // A newly formatted ext4 volume mounted as the data directory itself.
  TempDir dir;
  fs::create_directories(dir.path() / "lost+found");
  auto o = started_once(dir.path());
  auto marker = catga::internal::read_marker(dir.path());
  ASSERT_THAT(marker, IsOk());
  ASSERT_TRUE(marker->has_value());
  EXPECT_EQ((*marker)->state, catga::internal::JoinState::bootstrapped);
}

TEST(DataDirRules, AnotherClusterIdIsRefused) {
  TempDir dir;
  auto o = started_once(dir.path());
  o.cluster_id = "other";
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code(), catga::Code::failed_precondition);
  EXPECT_NE(node.error().message().find("cluster 'catga'"), std::string::npos) << node.error().message();
  EXPECT_NE(node.error().message().find("'other'"), std::string::npos) << node.error().message();
}

TEST(DataDirRules, AnotherNodesDirectoryIsRefused) {
  TempDir dir;
  auto o = started_once(dir.path());
  o.node_id = 2;
  o.members[0].id = 2;
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_NE(node.error().message().find("another node"), std::string::npos) << node.error().message();
}

TEST(DataDirRules, AMarkerWithoutItsLogIsRefused) {
  TempDir dir;
  auto o = started_once(dir.path());
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    const std::string name = entry.path().filename().string();
    if (name != "catga-cluster" && name != "catga-data-dir") fs::remove_all(entry.path());
  }
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code(), catga::Code::failed_precondition);
  EXPECT_NE(node.error().message().find("are gone"), std::string::npos) << node.error().message();
}

TEST(DataDirRules, APendingJoinRestartedWithoutJoinIsRefusedAndWithJoinWaits) {
  TempDir dir;
  auto o = lone_member(dir.path(), testsupport::free_port());
  {
    DigestMachine machine;
    auto node = start_node(o, machine, JoinMode::join_existing);
    ASSERT_THAT(node, IsOk());
    EXPECT_EQ((*node)->status().members.size(), 0u);  // waiting: no configuration, no bootstrap
  }
  auto marker = catga::internal::read_marker(dir.path());
  ASSERT_TRUE(marker && marker->has_value());
  EXPECT_EQ((*marker)->state, catga::internal::JoinState::pending_join);
  DigestMachine machine;
  auto bootstrap = start_node(o, machine);
  ASSERT_FALSE(bootstrap);
  EXPECT_NE(bootstrap.error().message().find("--join"), std::string::npos) << bootstrap.error().message();
  EXPECT_THAT(start_node(o, machine, JoinMode::join_existing), IsOk());
}

TEST(DataDirRules, ACorruptMarkerIsDataLoss) {
  TempDir dir;
  auto o = started_once(dir.path());
  {
    std::fstream f(dir.path() / "catga-cluster", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(25);
    f.put('X');
  }
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code(), catga::Code::data_loss) << node.error().to_string();
}

// A data directory from before markers existed is adopted as it is.
TEST(DataDirRules, ADirectoryWithoutMarkerButWithALogIsAdopted) {
  TempDir dir;
  auto o = started_once(dir.path());
  fs::remove(dir.path() / "catga-cluster");
  fs::remove(dir.path() / "catga-data-dir");
  DigestMachine machine;
  EXPECT_THAT(start_node(o, machine), IsOk());
  auto marker = catga::internal::read_marker(dir.path());
  ASSERT_TRUE(marker && marker->has_value());
}
