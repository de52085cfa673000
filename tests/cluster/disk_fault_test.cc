// Disk faults on a real filesystem under one durable RaftNode: a full disk, a
// directory that becomes unwritable, a disk that fails (EIO) — while the
// node runs and at its start (disk_fault_fixture.hpp: what libraft 0.22.1
// does, and what these tests pin down).
#include "disk_fault_fixture.hpp"

#include <iostream>
#include <optional>
#include <thread>

#include "cluster/data_dir.hpp"

namespace catga::internal::disk_fault_test {
namespace {

ClusterOptions single(const fs::path& dir, int port) { return lone_member(dir, port); }

// Proposes big records until one is refused; returns that refusal. Fails the
// test if a proposal gets no answer (a hang) or nothing is ever refused.
std::optional<Error> propose_until_refused(RaftNode& node, Ledger& ledger, const std::string& tag) {
  for (int i = 0; i < kEnoughToFillTheDisk; ++i) {
    const std::string r = big_record(tag + std::to_string(i));
    auto result = propose_sync(node, r);
    EXPECT_FALSE(!result && result.error().message().rfind("test:", 0) == 0) << "proposal " << i << " hung";
    ledger.record(r, result);
    if (!result) return result.error();
  }
  ADD_FAILURE() << kEnoughToFillTheDisk << " records of 32 KiB accepted on a full " << kDiskMiB << " MiB disk";
  return std::nullopt;
}

// Proposes until one is accepted (libraft retries preparing its log every 5 s).
bool propose_until_accepted(RaftNode& node, Ledger& ledger, const std::string& tag) {
  int i = 0;
  return wait_until(
      [&] {
        const std::string r = tag + std::to_string(i++);
        auto result = propose_sync(node, r);
        ledger.record(r, result);
        return result.has_value();
      },
      60s);
}

std::unique_ptr<RaftNode> start_ready(const ClusterOptions& o, RecordingMachine& m) {
  auto node = RaftNode::start(o, m);
  EXPECT_TRUE(node.has_value()) << describe(node.error());
  if (!node) return nullptr;
  EXPECT_TRUE(wait_until([&] { return (*node)->status().ready; }));
  return std::move(*node);
}

// Starts a node on `dir`, has `record` acknowledged, stops the node: a data
// directory with one record in it. False (and a test failure) if it failed.
bool leave_one_record(const fs::path& dir, int port, const std::string& record) {
  RecordingMachine m;
  auto node = start_ready(single(dir, port), m);
  if (!node) return false;
  auto r = propose_sync(*node, record);
  EXPECT_TRUE(r.has_value()) << describe(r.error());
  return r.has_value();
}

// A ready node on `dir` with 20 small records acknowledged (in `ledger`),
// before the fault; nullptr (and a test failure) if that did not work.
std::unique_ptr<RaftNode> start_with_some_acknowledged(const fs::path& dir, int port, RecordingMachine& m,
                                                       Ledger& ledger) {
  auto node = start_ready(single(dir, port), m);
  for (int i = 0; node && i < 20; ++i) {
    const std::string r = "before" + std::to_string(i);
    auto result = propose_sync(*node, r);
    EXPECT_TRUE(result.has_value()) << describe(result.error());
    if (!result) return nullptr;
    ledger.record(r, result);
  }
  return node;
}

// After the fault is gone: a node started on `dir` applies every acknowledged
// record, once and in order, and nothing that was refused.
void restart_and_check(const fs::path& dir, int port, const Ledger& ledger) {
  RecordingMachine m;
  auto node = start_ready(single(dir, port), m);
  ASSERT_TRUE(node);
  ASSERT_TRUE(wait_until([&] { return m.count() >= ledger.acknowledged.size(); }));
  ledger.check(m.records(), "restarted node");
  EXPECT_TRUE(propose_sync(*node, "after restart").has_value());
}

// One durable node on its own small disk with some records acknowledged
// before the fault (start_with_some_acknowledged); `node` is null, and the
// test failed, if that did not work.
struct NodeBeforeFault {
  explicit NodeBeforeFault(const SmallDisk& disk)
      : data(disk.path() / "data"), node(start_with_some_acknowledged(data, port, machine, ledger)) {}
  // Stops the node; a new one on the same data_dir applies every acknowledged
  // record once and in order, and nothing that was refused.
  void restart_and_check() {
    node.reset();
    disk_fault_test::restart_and_check(data, port, ledger);
  }

  const fs::path data;
  const int port = testing::free_port();
  Ledger ledger;
  RecordingMachine machine;
  std::unique_ptr<RaftNode> node;
};

TEST(DiskFault, FullDiskRefusesCommandsClearlyAndKeepsAcknowledgedOnes) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  NodeBeforeFault n(*disk);
  ASSERT_TRUE(n.node);
  {
    disk->fill(0);

    // libraft writes on into its preallocated segments, then the leader
    // refuses: resource_exhausted (nothing appended), naming the problem.
    auto refusal = propose_until_refused(*n.node, n.ledger, "full");
    ASSERT_TRUE(refusal);
    std::cerr << "full disk -> " << describe(*refusal) << "\n";
    EXPECT_EQ(refusal->code(), Code::resource_exhausted);
    EXPECT_THAT(refusal->message(), HasSubstr("not enough disk space"));
    EXPECT_THAT(refusal->message(), HasSubstr(n.data.string()));
    EXPECT_TRUE(n.ledger.unknown.empty());
    // And keeps refusing at once, without stopping the node.
    for (int i = 0; i < 5; ++i) {
      auto r = propose_sync(*n.node, "still-full" + std::to_string(i));
      n.ledger.record("still-full" + std::to_string(i), r);
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error().code(), Code::resource_exhausted) << describe(r.error());
    }
    EXPECT_EQ(n.node->status().failure, "");

    // Space comes back: the same node accepts commands again by itself.
    disk->free_space();
    EXPECT_TRUE(propose_until_accepted(*n.node, n.ledger, "freed"));
    EXPECT_EQ(n.machine.records().size(), n.ledger.acknowledged.size());
  }
  // Restart: everything acknowledged is on disk, nothing refused, no corruption.
  n.restart_and_check();
}

// A snapshot libraft cannot write: it retries creating the file every 5 s
// and says nothing. The node counts it (and logs it), and writes it once
// space is back.
TEST(DiskFault, SnapshotThatCannotBeWrittenIsCountedAndWrittenOnceSpaceIsBack) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  NodeBeforeFault n(*disk);
  ASSERT_TRUE(n.node);
  // About 12 MiB of state (the default thresholds take no snapshot of it).
  for (int i = 0; i < 384; ++i) {
    const std::string r = big_record("state" + std::to_string(i));
    auto result = propose_sync(*n.node, r);
    ASSERT_TRUE(result.has_value()) << describe(result.error());
    n.ledger.record(r, result);
  }
  ASSERT_EQ(newest_snapshot(n.data).name, "");
  disk->fill(4 << 20);  // the log keeps its preallocated segments; the snapshot does not fit
  auto answer = std::make_shared<std::promise<Result<std::uint64_t>>>();
  n.node->take_snapshot([answer](Result<std::uint64_t> r) { answer->set_value(std::move(r)); }, 30s);
  EXPECT_TRUE(wait_until([&] { return n.node->status().counters.snapshot_write_failures >= 1; }, 60s))
      << "a snapshot that cannot be written goes uncounted";
  EXPECT_EQ(newest_snapshot(n.data).name, "");

  disk->free_space();
  EXPECT_TRUE(wait_until([&] { return !newest_snapshot(n.data).name.empty(); }, 60s))
      << "the snapshot was not written once space was back";
  EXPECT_EQ(n.node->status().counters.snapshot_write_failures, 1u) << "one write, one failure";
  EXPECT_EQ(n.node->status().failure, "");
  answer->get_future().wait();  // the take_snapshot answer (written, or 30 s passed) before the node goes
  n.restart_and_check();
}

TEST(DiskFault, StartOnFullDiskFailsNamingTheProblem) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  const fs::path data = disk->path() / "data";
  const int port = testing::free_port();
  ASSERT_TRUE(leave_one_record(data, port, "kept"));
  RecordingMachine m;
  // Not a byte left: the write probe fails with ENOSPC.
  disk->fill(0);
  auto r = RaftNode::start(single(data, port), m);
  ASSERT_FALSE(r.has_value()) << "started on a full disk";
  std::cerr << "full disk at start -> " << describe(r.error()) << "\n";
  // Either the write probe fails (ENOSPC: invalid_argument, "No space left on
  // device") or, when ext4 still finds room for its 5 bytes, the free-space
  // check refuses (resource_exhausted, "no space left on device"). The second
  // happens every time since the data directory holds the two small
  // cluster-marker files (why ext4 then has a block left was not investigated).
  EXPECT_THAT(r.error().code(), ::testing::AnyOf(Code::invalid_argument, Code::resource_exhausted));
  EXPECT_THAT(r.error().message(), HasSubstr("data_dir: " + data.string()));
  EXPECT_THAT(r.error().message(), HasSubstr("o space left on device"));
  // A little room, less than one 8 MiB log segment: libraft would start and
  // refuse every entry, so start() refuses instead.
  disk->free_space();
  disk->fill(4u << 20);
  r = RaftNode::start(single(data, port), m);
  ASSERT_FALSE(r.has_value()) << "started with " << disk->free_bytes() << " bytes free";
  std::cerr << "4 MiB free at start -> " << describe(r.error()) << "\n";
  EXPECT_EQ(r.error().code(), Code::resource_exhausted);
  EXPECT_THAT(r.error().message(), HasSubstr("data_dir: " + data.string()));
  EXPECT_THAT(r.error().message(), HasSubstr("no space left on device"));
  // Room again: the node starts with its data.
  disk->free_space();
  auto node = start_ready(single(data, port), m);
  ASSERT_TRUE(node);
  ASSERT_TRUE(wait_until([&] { return m.count() == 1; }));
  EXPECT_EQ(m.records(), std::vector<std::string>{"kept"});
}

// Root ignores permission bits (RaftNodeStart.RejectsUnusableDataDir covers a
// path that is not a directory); a read-only filesystem stops root too.
TEST(DiskFault, ReadOnlyDataDirAtStartFailsNamingDataDir) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  const fs::path existing = disk->path() / "data";
  const int port = testing::free_port();
  ASSERT_TRUE(leave_one_record(existing, port, "kept"));
  std::string why;
  ASSERT_TRUE(disk->remount_read_only(true, why)) << why;
  RecordingMachine m;
  for (const fs::path& dir : {existing, disk->path() / "fresh"}) {
    auto r = RaftNode::start(single(dir, port), m);
    ASSERT_FALSE(r.has_value()) << "started in read-only " << dir;
    std::cerr << "read-only data_dir at start -> " << describe(r.error()) << "\n";
    EXPECT_EQ(r.error().code(), Code::invalid_argument);
    EXPECT_THAT(r.error().message(), HasSubstr("data_dir"));
    EXPECT_THAT(r.error().message(), HasSubstr(dir.string()));
    EXPECT_THAT(r.error().message(), HasSubstr("Read-only file system"));
  }
  ASSERT_TRUE(disk->remount_read_only(false, why)) << why;
  auto node = start_ready(single(existing, port), m);
  ASSERT_TRUE(node);
  ASSERT_TRUE(wait_until([&] { return m.count() == 1; }));
}

// data_dir turns read-only under a running node. libraft 0.22.1 would go on
// writing into its preallocated segments, fail to rename the full ones, and —
// once the directory is writable again — rename the later ones, leaving a log
// it refuses to load ("unexpected closed segment ..."). The node stops itself
// instead, naming the problem; the directory stays loadable.
TEST(DiskFault, DataDirBecomesReadOnlyWhileRunning) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  NodeBeforeFault n(*disk);
  ASSERT_TRUE(n.node);
  {
    // `mount -o remount,ro` is refused (EBUSY) while libraft holds its log
    // segments open for writing; a read-only bind mount over data_dir makes
    // every new file, rename and removal in it fail with EROFS instead.
    std::string why;
    EXPECT_FALSE(disk->remount_read_only(true, why)) << "remounted read-only under a running node";
    ASSERT_TRUE(disk->protect(n.data, why)) << why;

    // Commands keep going until the node notices (within about a second);
    // from then on they fail at once, naming data_dir and the reason.
    Result<Applied> last = Error(Code::unknown, "none sent");
    int sent = 0;
    ASSERT_TRUE(wait_until(
        [&] {
          const std::string r = big_record("ro" + std::to_string(sent++));
          last = propose_sync(*n.node, r);
          n.ledger.record(r, last);
          return !last.has_value();
        },
        60s));
    std::cerr << "read-only data_dir while running -> " << describe(last.error()) << "\n";
    EXPECT_THAT(last.error().message(), HasSubstr(n.data.string()));
    EXPECT_THAT(last.error().message(), HasSubstr("Read-only file system"));
    EXPECT_THAT(n.node->status().failure, HasSubstr("Read-only file system"));
    auto r = propose_sync(*n.node, "still-read-only");
    n.ledger.record("still-read-only", r);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), Code::failed_precondition);
    EXPECT_THAT(r.error().message(), HasSubstr("node stopped: "));
    EXPECT_THAT(r.error().message(), HasSubstr("not writable"));
    disk->unprotect();
  }
  // Writable again (here: the bind mount removed, as after `mount -o
  // remount,rw`), and restarted: everything acknowledged is there.
  n.restart_and_check();
}

// The disk fails under the node (ext4 shutdown: every I/O, also through open
// files, returns EIO). libraft 0.22.1 would crash 5 s later retrying the write
// (DiskFaultKnownBugs below); the node stops itself first, naming the error.
TEST(DiskFault, FailedLogWriteStopsTheNodeNamingTheError) {
  MOUNT_OR_SKIP(disk, kDiskMiB);
  NodeBeforeFault n(*disk);
  ASSERT_TRUE(n.node);
  {
    std::string why;
    ASSERT_TRUE(disk->shut_down(why)) << why;
    auto r = propose_sync(*n.node, "during");
    n.ledger.record("during", r);
    ASSERT_FALSE(r.has_value()) << "acknowledged a write to a dead disk";
    std::cerr << "failed log write -> " << describe(r.error()) << "\n";
    EXPECT_TRUE(r.error().code() == Code::deadline_exceeded || r.error().code() == Code::failed_precondition)
        << describe(r.error());
    EXPECT_THAT(r.error().message(), HasSubstr("Input/output error"));
    EXPECT_THAT(n.node->status().failure, HasSubstr(n.data.string()));
    EXPECT_EQ(n.node->status().role, NodeRole::unavailable);
    // Later commands fail at once with the same reason.
    r = propose_sync(*n.node, "after");
    n.ledger.record("after", r);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), Code::failed_precondition);
    EXPECT_THAT(r.error().message(), HasSubstr("node stopped: "));
    EXPECT_THAT(r.error().message(), HasSubstr("Input/output error"));
    // Past libraft's 5 s disk retry: the process is still here.
    std::this_thread::sleep_for(6s);
  }
  n.node.reset();  // before the remount: nothing may hold the old disk open
  // A new disk (the same image remounted: the journal replays): every
  // acknowledged record is there.
  std::string why;
  ASSERT_TRUE(disk->remount(why)) << why;
  n.restart_and_check();
}

}  // namespace
}  // namespace catga::internal::disk_fault_test
