// The data directory rules (docs/operations.md, "Data directory rules"), one
// at a time on a lone RaftNode in a temporary directory: the cluster marker a
// first start writes, and each directory a start refuses or adopts. The
// rules' stories on 3-node clusters: data_dir_rules_test.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "catga/testing.hpp"
#include "cluster_test_support.hpp"
#include "cluster/backup.hpp"
#include "cluster/data_dir.hpp"
#include "cluster/data_dir_marker.hpp"
#include "cluster/data_dir_marker_identity.hpp"
#include "cluster/entry_format.hpp"

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

// The directory's identity survives metadata changes (issue 13): the
// sentinel is identified by its inode and birth time (statx), which a chmod,
// a chown, a hard link or a Kubernetes fsGroup walk leave alone, and which a
// copy does not keep. Earlier builds used the change time instead, which
// every one of those changes moves.
namespace {

struct SentinelTimes {
  unsigned long long ino = 0;
  long long ctime_ns = 0;
  std::optional<long long> btime_ns;
};

SentinelTimes sentinel_times(const fs::path& dir) {
  struct statx sx {};
  SentinelTimes t;
  const fs::path p = dir / "catga-data-dir";
  if (::statx(AT_FDCWD, p.c_str(), 0, STATX_INO | STATX_CTIME | STATX_BTIME, &sx) != 0) {
    ADD_FAILURE() << "statx " << p << ": " << std::strerror(errno);
    return t;
  }
  t.ino = sx.stx_ino;
  t.ctime_ns = static_cast<long long>(sx.stx_ctime.tv_sec) * 1'000'000'000LL + sx.stx_ctime.tv_nsec;
  if (sx.stx_mask & STATX_BTIME) {
    t.btime_ns = static_cast<long long>(sx.stx_btime.tv_sec) * 1'000'000'000LL + sx.stx_btime.tv_nsec;
  }
  return t;
}

// A no-op chmod and a chown to the same owner, repeated (a bounded number of
// times) until the sentinel's change time moved: the kernel's clock for
// change times ticks coarsely.
void touch_sentinel_metadata(const fs::path& dir) {
  const fs::path p = dir / "catga-data-dir";
  const long long before = sentinel_times(dir).ctime_ns;
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0) << std::strerror(errno);
  for (int i = 0; i < 2000 && sentinel_times(dir).ctime_ns == before; ++i) {
    ASSERT_EQ(::chmod(p.c_str(), st.st_mode & 07777), 0) << std::strerror(errno);
    ASSERT_EQ(::chown(p.c_str(), st.st_uid, st.st_gid), 0) << std::strerror(errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_NE(sentinel_times(dir).ctime_ns, before) << "the sentinel's change time never moved";
}

// The marker an earlier build wrote: the sentinel's identity as "INODE.CTIME_NS".
void write_earlier_builds_marker(const fs::path& dir, unsigned long long ino, long long ctime_ns) {
  std::string body = "catga-cluster-marker 1\ncluster_id=catga\nnode_id=1\nstate=bootstrapped\ndata_dir_identity=" +
                     std::to_string(ino) + "." + std::to_string(ctime_ns) + "\n";
  body += "crc32=" + catga::internal::hex32(catga::internal::crc32(body)) + "\n";
  std::ofstream(dir / "catga-cluster", std::ios::binary | std::ios::trunc) << body;
}

std::string marker_text(const fs::path& dir) {
  std::ifstream in(dir / "catga-cluster", std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST(DataDirRules, AChmodChownOrHardLinkOfTheSentinelKeepsTheNodesOwnDirectory) {
  TempDir dir, elsewhere;
  auto o = started_once(dir.path());
  touch_sentinel_metadata(dir.path());
  {
    DigestMachine machine;
    auto node = start_node(o, machine);
    ASSERT_THAT(node, IsOk()) << "a chmod / chown of the sentinel made the node refuse its own directory";
  }
  // A hard link (cp -al, a backup tool's snapshot) changes the change time too.
  const long long before = sentinel_times(dir.path()).ctime_ns;
  fs::create_hard_link(dir.path() / "catga-data-dir", elsewhere.path() / "link");
  fs::remove(elsewhere.path() / "link");
  touch_sentinel_metadata(dir.path());
  ASSERT_NE(sentinel_times(dir.path()).ctime_ns, before);
  {
    DigestMachine machine;
    EXPECT_THAT(start_node(o, machine), IsOk());
  }
  // The earlier builds' line was brought up to date at that start, so that a
  // build rolled back to starts too.
  const SentinelTimes now = sentinel_times(dir.path());
  EXPECT_NE(marker_text(dir.path()).find("\ndata_dir_identity=" + std::to_string(now.ino) + "." +
                                         std::to_string(now.ctime_ns) + "\n"),
            std::string::npos)
      << marker_text(dir.path());
}

TEST(DataDirRules, ACopyIsRefusedThoughItsSentinelKeepsItsMetadata) {
  TempDir dir, copies;
  auto o = started_once(dir.path());
  const fs::path copy = copies.path() / "copy";
  fs::copy(dir.path(), copy, fs::copy_options::recursive);
  o.data_dir = copy;
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_EQ(node.error().code(), catga::Code::failed_precondition);
  EXPECT_NE(node.error().message().find("it is a copy"), std::string::npos) << node.error().message();
}

// A copy that was given the inode number of the file it replaced (rm -rf,
// then a restore on the same file system: inode numbers are reused) differs
// in its birth time. Written by hand: a marker recording the sentinel's
// inode with an earlier birth time.
TEST(DataDirRules, ASentinelWithTheRecordedInodeButAnotherBirthTimeIsRefused) {
  TempDir dir;
  auto o = started_once(dir.path());
  const SentinelTimes t = sentinel_times(dir.path());
  if (!t.btime_ns) GTEST_SKIP() << "this file system reports no birth time";
  const std::string own = catga::internal::sentinel_identity(dir.path());
  const std::string earlier = "ino=" + std::to_string(t.ino) + ",btime=" + std::to_string(*t.btime_ns - 1);
  ASSERT_EQ(own, "ino=" + std::to_string(t.ino) + ",btime=" + std::to_string(*t.btime_ns));
  std::string text = marker_text(dir.path());
  const auto at = text.find(own);
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, own.size(), earlier);
  text = text.substr(0, text.rfind("crc32="));
  text += "crc32=" + catga::internal::hex32(catga::internal::crc32(text)) + "\n";
  std::ofstream(dir.path() / "catga-cluster", std::ios::binary | std::ios::trunc) << text;
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_NE(node.error().message().find("it is a copy"), std::string::npos) << node.error().message();
}

// Upgraded in place: the marker of an earlier build ("INODE.CTIME_NS") is
// accepted while the inode and change time still match, and rewritten in
// this build's form.
TEST(DataDirRules, AnEarlierBuildsMarkerIsAcceptedAndRewritten) {
  TempDir dir;
  auto o = started_once(dir.path());
  const SentinelTimes t = sentinel_times(dir.path());
  write_earlier_builds_marker(dir.path(), t.ino, t.ctime_ns);
  {
    DigestMachine machine;
    ASSERT_THAT(start_node(o, machine), IsOk());
  }
  auto marker = catga::internal::read_marker(dir.path());
  ASSERT_THAT(marker, IsOk());
  ASSERT_TRUE(marker->has_value());
  EXPECT_EQ((*marker)->identity, catga::internal::sentinel_identity(dir.path()));
  EXPECT_EQ((*marker)->identity.rfind("ino=", 0), 0u) << (*marker)->identity;
  EXPECT_EQ((*marker)->state, catga::internal::JoinState::bootstrapped);
  // Still readable by an earlier build: the "INODE.CTIME_NS" line stays.
  EXPECT_NE(marker_text(dir.path()).find("\ndata_dir_identity=" + std::to_string(t.ino) + "."), std::string::npos)
      << marker_text(dir.path());
}

// An earlier build's marker whose change time no longer matches (chmod-ed
// before the upgrade): the inode matches, and where the file system reports
// birth times the sentinel is older than the recorded change time (a copy
// would be younger), so it is the node's own. Without birth times it stays
// refused, as the earlier build refused it, saying why.
TEST(DataDirRules, AnEarlierBuildsMarkerAfterAChmodIsAcceptedWhereTheBirthTimeVouchesForIt) {
  TempDir dir;
  auto o = started_once(dir.path());
  const SentinelTimes t = sentinel_times(dir.path());
  write_earlier_builds_marker(dir.path(), t.ino, t.ctime_ns);
  touch_sentinel_metadata(dir.path());
  DigestMachine machine;
  auto node = start_node(o, machine);
  if (!t.btime_ns) {
    ASSERT_FALSE(node);
    EXPECT_NE(node.error().message().find("reports no birth time"), std::string::npos) << node.error().message();
    return;
  }
  ASSERT_THAT(node, IsOk());
  node->reset();
  auto marker = catga::internal::read_marker(dir.path());
  ASSERT_TRUE(marker && marker->has_value());
  EXPECT_EQ((*marker)->identity, catga::internal::sentinel_identity(dir.path()));
}

// An earlier build's marker recording the sentinel's inode with a change
// time before the sentinel's birth: the sentinel was created after that
// marker was written, so it is a copy that got the same inode number.
TEST(DataDirRules, AnEarlierBuildsMarkerOlderThanTheSentinelIsRefused) {
  TempDir dir;
  auto o = started_once(dir.path());
  const SentinelTimes t = sentinel_times(dir.path());
  if (!t.btime_ns) GTEST_SKIP() << "this file system reports no birth time";
  write_earlier_builds_marker(dir.path(), t.ino, *t.btime_ns - 1);
  DigestMachine machine;
  auto node = start_node(o, machine);
  ASSERT_FALSE(node);
  EXPECT_NE(node.error().message().find("it is a copy"), std::string::npos) << node.error().message();
}

// force_new_cluster judges the directory by the same rule: a survivor whose
// sentinel was chmod-ed, and whose marker an earlier build wrote, is
// recovered; a copy of it is not.
TEST(DataDirRules, ForceNewClusterAcceptsAChmodOfTheSentinelAndRefusesACopy) {
  TempDir dir, copies;
  auto o = started_once(dir.path());
  const SentinelTimes t = sentinel_times(dir.path());
  write_earlier_builds_marker(dir.path(), t.ino, t.ctime_ns);
  const fs::path copy = copies.path() / "copy";
  fs::copy(dir.path(), copy, fs::copy_options::recursive);
  touch_sentinel_metadata(dir.path());
  o.cluster_id = "catga-recovered";
  if (t.btime_ns) {
    EXPECT_THAT(catga::internal::force_new_cluster(o), IsOk());
  }
  o.data_dir = copy;
  auto refused = catga::internal::force_new_cluster(o);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("copy"), std::string::npos) << refused.error().message();
}

// The rule itself, on what file systems this machine does not have report:
// no birth time (the inode generation stands in), neither (the inode alone),
// and a kernel that starts reporting a birth time.
TEST(DataDirIdentity, EachFormMatchesItsOwnSentinelAndNotACopy) {
  using catga::internal::identity_matches;
  using catga::internal::identity_of;
  using catga::internal::SentinelFacts;
  const SentinelFacts with_btime{.ino = 12, .ctime_ns = 2000, .btime_ns = 1000, .generation = 77};
  const SentinelFacts with_generation{.ino = 12, .ctime_ns = 2000, .btime_ns = {}, .generation = 77};
  const SentinelFacts inode_only{.ino = 12, .ctime_ns = 2000, .btime_ns = {}, .generation = {}};
  EXPECT_EQ(identity_of(with_btime), "ino=12,btime=1000");
  EXPECT_EQ(identity_of(with_generation), "ino=12,gen=77");
  EXPECT_EQ(identity_of(inode_only), "ino=12");

  // A metadata change moves only the change time: each form still matches.
  for (SentinelFacts f : {with_btime, with_generation, inode_only}) {
    const std::string recorded = identity_of(f);
    f.ctime_ns = 9000;
    EXPECT_TRUE(identity_matches(f, recorded)) << recorded;
  }
  // A copy: another inode, or the same inode number with another birth time
  // or generation (a reused number). Only the inode-only form misses the latter.
  EXPECT_FALSE(
      identity_matches({.ino = 13, .ctime_ns = 2000, .btime_ns = 1000, .generation = 77}, "ino=12,btime=1000"));
  EXPECT_FALSE(
      identity_matches({.ino = 12, .ctime_ns = 5000, .btime_ns = 4000, .generation = 77}, "ino=12,btime=1000"));
  EXPECT_FALSE(identity_matches({.ino = 12, .ctime_ns = 5000, .btime_ns = {}, .generation = 78}, "ino=12,gen=77"));
  EXPECT_FALSE(identity_matches({.ino = 13, .ctime_ns = 5000, .btime_ns = {}, .generation = {}}, "ino=12"));
  EXPECT_TRUE(identity_matches({.ino = 12, .ctime_ns = 5000, .btime_ns = {}, .generation = {}}, "ino=12"));
  // A field recorded but no longer reported is not taken on trust.
  EXPECT_FALSE(identity_matches(with_generation, "ino=12,btime=1000"));
  EXPECT_FALSE(identity_matches(inode_only, "ino=12,gen=77"));
  // A kernel that starts reporting a birth time: the generation still vouches
  // (and the marker is rewritten in the richer form).
  EXPECT_TRUE(identity_matches(with_btime, "ino=12,gen=77"));
  // Garbage and fields of a newer build are not a match.
  for (const char* bad : {"", "ino=", "ino=12,", "ino=x", "ino=12,btime", "ino=12,color=3", "btime=1000", "12", "12.x",
                          "x.2000", "ino=99999999999999999999999"}) {
    EXPECT_FALSE(identity_matches(with_btime, bad)) << bad;
  }
}

TEST(DataDirIdentity, AnEarlierBuildsIdentityIsJudgedByItsInodeChangeTimeAndTheBirthTime) {
  using catga::internal::earlier_identity_undecidable;
  using catga::internal::identity_matches;
  using catga::internal::SentinelFacts;
  // Unchanged since the earlier build recorded it.
  EXPECT_TRUE(identity_matches({.ino = 12, .ctime_ns = 2000, .btime_ns = {}, .generation = {}}, "12.2000"));
  EXPECT_EQ(catga::internal::earlier_identity_of({.ino = 12, .ctime_ns = 2000}), "12.2000");
  // The change time moved: born before the recorded change time, the node's own.
  EXPECT_TRUE(identity_matches({.ino = 12, .ctime_ns = 9000, .btime_ns = 1500, .generation = {}}, "12.2000"));
  EXPECT_TRUE(identity_matches({.ino = 12, .ctime_ns = 9000, .btime_ns = 2000, .generation = {}}, "12.2000"));
  // Born after it: a copy that was given the same inode number.
  EXPECT_FALSE(identity_matches({.ino = 12, .ctime_ns = 9000, .btime_ns = 2001, .generation = {}}, "12.2000"));
  // Another inode.
  EXPECT_FALSE(identity_matches({.ino = 13, .ctime_ns = 2000, .btime_ns = 1000, .generation = {}}, "12.2000"));
  // No birth time: refused, and said to be undecidable (not "a copy").
  const SentinelFacts no_btime{.ino = 12, .ctime_ns = 9000, .btime_ns = {}, .generation = 77};
  EXPECT_FALSE(identity_matches(no_btime, "12.2000"));
  EXPECT_TRUE(earlier_identity_undecidable(no_btime, "12.2000"));
  EXPECT_FALSE(earlier_identity_undecidable(no_btime, "13.2000"));
  EXPECT_FALSE(earlier_identity_undecidable(no_btime, "ino=12,gen=77"));
  EXPECT_FALSE(earlier_identity_undecidable({.ino = 12, .ctime_ns = 9000, .btime_ns = 5, .generation = {}}, "12.2000"));
}
