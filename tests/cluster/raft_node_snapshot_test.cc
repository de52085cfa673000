// Real RaftNodes on 127.0.0.1 (raft_node_fixture.hpp): snapshots — a lagging
// follower's install, the leader's one copy per install, and InstallSnapshot
// messages held while the follower cannot take them. Logs bounded in bytes
// on disk: raft_node_log_bytes_test.cc.
#include "raft_node_fixture.hpp"

namespace catga::internal {
namespace {

using namespace raft_node_test;

TEST(RaftNode, LaggingFollowerInstallsSnapshot) {
  Cluster c(3, small_snapshots);
  const auto behind = leave_a_follower_behind(c);
  ASSERT_TRUE(behind.has_value());
  const unsigned l = behind->first;
  const unsigned f = behind->second;
  const bool snapshotted = wait_until([&] { return c.node(l).status().last_snapshot_index >= 200; });
  if (!snapshotted) {
    auto st = c.node(l).status();
    std::cerr << "commit " << st.commit_index << " applied " << st.applied_index << " snap "
              << st.last_snapshot_index << " machine snapshots " << c.machine(l).snapshots() << "\n";
    for (auto& e : fs::directory_iterator(c.dir(l))) std::cerr << "  " << e.path().filename() << "\n";
  }
  ASSERT_TRUE(snapshotted);
  EXPECT_GT(c.machine(l).snapshots(), 0);

  auto r = c.start(f);
  ASSERT_TRUE(r.has_value()) << describe(r.error());
  ASSERT_TRUE(c.wait_all_applied(400));
  EXPECT_GE(c.machine(f).restores(), 1) << "follower caught up without a snapshot";
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(l).digest());
}

// Where a decode waits until the test lets it go on: a state that takes
// long to decode, without a timing assumption.
class Gate {
 public:
  void pass() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  bool wait_entered(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return entered_; });
  }
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

// Opens the gate when the test ends, however it ends (before the cluster
// stops: closing a node waits for a decode under way).
struct OpenAtExit {
  Gate& gate;
  ~OpenAtExit() { gate.open(); }
};

// A DigestMachine that decodes an installed snapshot off the loop thread
// (prepare_restore), slowly: the decode waits at the gate.
class SlowDecodingMachine : public DigestMachine {
 public:
  explicit SlowDecodingMachine(Gate& gate) : gate_(gate) {}

  Result<std::unique_ptr<PreparedRestore>> prepare_restore(std::string_view snapshot) override {
    gate_.pass();
    return std::unique_ptr<PreparedRestore>(std::make_unique<Decoded>(*this, std::string(snapshot)));
  }

 private:
  struct Decoded final : PreparedRestore {
    Decoded(SlowDecodingMachine& m, std::string b) : machine(m), bytes(std::move(b)) {}
    Result<void> adopt() override { return machine.DigestMachine::restore(bytes); }
    SlowDecodingMachine& machine;
    std::string bytes;
  };
  Gate& gate_;
};

// Leaves a follower behind (leave_a_follower_behind), waits for the leader's
// snapshot past it and starts the follower again on a SlowDecodingMachine:
// it receives the snapshot, and its decode waits at `gate`. Returns the
// leader and the follower (nullopt, with a test failure, if any step failed).
std::optional<std::pair<unsigned, unsigned>> start_decoding_behind(Cluster& c, Gate& gate) {
  const auto behind = leave_a_follower_behind(c);
  if (!behind) return std::nullopt;
  const auto [l, f] = *behind;
  if (!wait_until([&] { return c.node(l).status().last_snapshot_index >= 200; })) {
    ADD_FAILURE() << "the leader took no snapshot past the follower";
    return std::nullopt;
  }
  // libraft's transport keeps the last three messages for an unreachable
  // peer (older snapshots among them); heartbeats push them out.
  std::this_thread::sleep_for(2s);
  auto r = c.start(f, JoinMode::bootstrap_if_empty, std::make_unique<SlowDecodingMachine>(gate));
  if (!r) {
    ADD_FAILURE() << describe(r.error());
    return std::nullopt;
  }
  if (!gate.wait_entered(60s)) {
    ADD_FAILURE() << "the follower never decoded the snapshot";
    return std::nullopt;
  }
  return behind;
}

// Regression (issue 12): a follower decoded an installed snapshot inside
// libraft's fsm->restore, on its loop thread. For as long as the decode took
// (seconds at millions of objects) it answered nothing; the leader declared
// it unreachable after an election timeout, aborted the install and, once
// the follower answered again, read and sent the whole snapshot once more.
// Now the decode runs beside the loop thread, which keeps answering: the
// leader sends nothing more while the follower decodes, or afterwards.
// A follower decodes the snapshot it was sent for `decode` (its gate held):
// the leader sends it no second copy, however long that takes.
void no_second_copy_while_the_follower_decodes(std::chrono::seconds decode) {
  Gate gate;
  Cluster c(3, small_snapshots);
  OpenAtExit open_at_exit{gate};
  const auto behind = start_decoding_behind(c, gate);
  ASSERT_TRUE(behind.has_value());
  const unsigned l = behind->first;
  const unsigned f = behind->second;
  // Its loop thread runs on meanwhile (it answers the leader's heartbeats).
  auto ran = std::make_shared<std::promise<void>>();
  c.node(f).post([ran] { ran->set_value(); });
  EXPECT_EQ(ran->get_future().wait_for(30s), std::future_status::ready) << "the follower's loop thread is held by the decode";
  // What the leader sent until three election timeouts (1 s each) into the
  // decode (before the decode began, libraft may already have sent the
  // snapshot more than once) is the baseline.
  std::this_thread::sleep_for(3s);
  const std::uint64_t sent = c.node(l).status().counters.snapshots_sent;
  EXPECT_GE(sent, 1u);
  std::this_thread::sleep_for(decode - 3s);
  gate.open();
  ASSERT_TRUE(c.wait_all_applied(400));
  // Heartbeats after the catch-up: a leader that gave up on the follower
  // would send the snapshot again now.
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(c.node(l).status().counters.snapshots_sent, sent) << "the leader sent the snapshot again";
  EXPECT_GE(c.machine(f).restores(), 1);
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(l).digest());
}

TEST(RaftNode, LeaderSendsNoSnapshotAgainWhileTheFollowerDecodesIt) { no_second_copy_while_the_follower_decodes(3s); }

// libraft's install timeout is 30 s: a decode that lasts longer (125 s at 10 M
// objects on a loaded machine) is no reason for a second copy while the
// follower keeps answering that it is still installing.
TEST(RaftNode, LeaderSendsNoSnapshotAgainWhileTheFollowerDecodesItPastTheInstallTimeout) {
  no_second_copy_while_the_follower_decodes(40s);
}

// ---- InstallSnapshot held during an install (issue 12) ----------------------
//
// A follower that receives an InstallSnapshot while it installs one keeps
// the newest such message (raft_install.c, catga_install_hold) and hands it
// to libraft when the install is over (raft_c.c, heldInstallDeliver). The
// leader sends a snapshot once per connection, so these tests forge the
// extra copies: a client speaking libraft's wire protocol (handshake, then
// the message) under the leader's id and address, while the follower's
// decode of the real snapshot waits at a gate. Under AddressSanitizer they
// run with libraft's blocks on malloc (CATGA_RAFT_HEAP=malloc), so a block
// of the held message freed twice, or read after its connection closed, is
// reported.

void see_libraft_blocks_under_asan() {
#if defined(__SANITIZE_ADDRESS__)
  ::setenv("CATGA_RAFT_HEAP", "malloc", 1);  // before the first node opens
#endif
}

// The newest snapshot in a data directory: its term, index and bytes
// (libraft's "snapshot-TERM-INDEX-TIMESTAMP" holds the data as sent).
struct SnapshotFile {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string bytes;
};

std::optional<SnapshotFile> newest_snapshot(const fs::path& dir) {
  std::optional<SnapshotFile> best;
  fs::path path;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    unsigned long long term = 0, index = 0, ts = 0;
    int consumed = 0;
    if (std::sscanf(name.c_str(), "snapshot-%llu-%llu-%llu%n", &term, &index, &ts, &consumed) == 3 &&
        static_cast<std::size_t>(consumed) == name.size() && (!best || index > best->index)) {
      best = SnapshotFile{term, index, {}};
      path = e.path();
    }
  }
  if (!best) return best;
  std::ifstream in(path, std::ios::binary);
  best->bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return std::nullopt;
  return best;
}

// A configuration of voters as libraft 0.22.1 encodes it
// (src/configuration.c): format 1, the number of servers, each server's id,
// NUL-terminated address and role (1: voter), padded to 8 bytes.
std::string encoded_voters(const std::vector<Member>& members) {
  std::string out(1, '\x01');
  testsupport::put64(out, members.size());
  for (const auto& m : members) {
    testsupport::put64(out, m.id);
    out += m.address;
    out.push_back('\0');
    out.push_back('\x01');
  }
  out.append((8 - out.size() % 8) % 8, '\0');
  return out;
}

// An InstallSnapshot as libraft 0.22.1 encodes it (src/uv_encoding.c,
// message version 0): the preamble (type 5, version 0, header length), the
// header (term, last index and term, configuration index, the encoded
// configuration, the data's length, a reserved word) and the data.
std::string install_snapshot_message(std::uint64_t term, std::uint64_t last_index, std::uint64_t last_term,
                                     const std::vector<Member>& members, const std::string& data) {
  const std::string conf = encoded_voters(members);
  std::string header;
  testsupport::put64(header, term);
  testsupport::put64(header, last_index);
  testsupport::put64(header, last_term);
  testsupport::put64(header, 1);  // the bootstrap configuration's index
  testsupport::put64(header, conf.size());
  header += conf;
  testsupport::put64(header, data.size());
  testsupport::put64(header, 0);
  std::string out(1, '\x05');  // RAFT_INSTALL_SNAPSHOT
  out.append(7, '\0');
  testsupport::put64(out, header.size());
  return out + header + data;
}

// What the forged copies carry, each sent on its own connection that is
// closed right after (libraft frees the connection's sender address then).
enum class Forged { newest, stale };

// Leaves a follower behind, starts it with its decode of the leader's
// snapshot held at a gate, and forges `copies` from the leader while it
// decodes (each newer than the one being decoded, or older than it). Then
// either opens the gate (`stop_while_held` false: the last copy is
// delivered) or stops the follower, waiting for its decode, and starts it
// again. Either way the follower ends with the cluster's state.
void held_install_snapshots(const std::vector<Forged>& copies, bool stop_while_held) {
  see_libraft_blocks_under_asan();
  Gate gate;
  Cluster c(3, small_snapshots);
  OpenAtExit open_at_exit{gate};
  const auto behind = start_decoding_behind(c, gate);
  ASSERT_TRUE(behind.has_value());
  const unsigned l = behind->first;
  const unsigned f = behind->second;
  const std::uint64_t decoding = c.node(f).status().last_snapshot_index;

  // The other two go on: the leader's newest snapshot is past the one the
  // follower decodes.
  EXPECT_EQ(c.propose_many(l, 400, 4, "while-installing-"), 400);
  std::optional<SnapshotFile> newest;
  ASSERT_TRUE(wait_until([&] {
    newest = newest_snapshot(c.dir(l));
    return newest && newest->index >= 600;
  }));
  // The copies carry the next term: libraft adopts it when it reads one, so
  // the follower's term tells whether a copy reached libraft.
  const std::uint64_t term = c.node(l).status().term;
  std::vector<Member> members;
  for (unsigned i = 0; i < 3; ++i) members.push_back(c.member(i));
  const std::uint64_t sent = c.node(l).status().counters.snapshots_sent;
  for (Forged copy : copies) {
    const std::string message =
        copy == Forged::newest
            ? install_snapshot_message(term + 1, newest->index, newest->term, members, newest->bytes)
            : install_snapshot_message(term + 1, 100, newest->term, members, "not a snapshot: never decoded");
    testsupport::RawRaftClient forger(c.member(f).address);
    ASSERT_TRUE(forger.connected());
    ASSERT_TRUE(testsupport::authenticate(forger, testsupport::kClusterSecret, c.member(l).id, c.member(f).id, "catga",
                                          c.member(l).address));
    ASSERT_TRUE(forger.write(message));
  }
  // The copies travel over loopback while the decode is still held; the
  // follower's loop thread reads them (it answers a posted task after).
  std::this_thread::sleep_for(1s);
  auto ran = std::make_shared<std::promise<void>>();
  c.node(f).post([ran] { ran->set_value(); });
  ASSERT_EQ(ran->get_future().wait_for(30s), std::future_status::ready);
  EXPECT_EQ(c.machine(f).restores(), 0) << "the follower installed while its decode was held";
  EXPECT_EQ(c.node(f).status().term, term) << "a copy reached libraft during the install";

  if (stop_while_held) {
    auto stopped = std::async(std::launch::async, [&] { c.stop(f); });
    // Closing waits for the decode under way: it cannot finish while held.
    EXPECT_EQ(stopped.wait_for(1s), std::future_status::timeout) << "the node closed under a running decode";
    gate.open();
    ASSERT_EQ(stopped.wait_for(60s), std::future_status::ready) << "the node never closed";
    stopped.get();
    auto again = c.start(f);
    ASSERT_TRUE(again.has_value()) << describe(again.error());
  } else {
    gate.open();
    // The last copy reaches libraft once the install is over (its term
    // makes the leader step down: the cluster elects one again) — unless the
    // leader sent a real copy meanwhile (it does after libraft's install
    // timeout, or on a new connection), which arrived later and replaced it.
    const auto leader_sent = [&] { return c.node(l).status().counters.snapshots_sent != sent; };
    EXPECT_TRUE(wait_until([&] { return c.node(f).status().term > term || leader_sent(); }, 60s));
    if (!leader_sent()) EXPECT_GT(c.node(f).status().term, term) << "the held copy was never delivered";
    else std::cerr << "the leader sent a real copy after the forged ones\n";
  }
  ASSERT_TRUE(c.wait_all_applied(800));
  if (!stop_while_held) {
    EXPECT_GE(c.machine(f).restores(), 1);
    EXPECT_GE(c.node(f).status().last_snapshot_index, decoding);
  }
  // The follower still follows: a later command reaches it.
  const auto leader = c.ready_leader();
  ASSERT_TRUE(leader.has_value());
  EXPECT_EQ(c.propose_many(*leader, 10, 1, "after-"), 10);
  ASSERT_TRUE(c.wait_all_applied(810));
  for (unsigned i = 0; i < 3; ++i) EXPECT_EQ(c.machine(i).digest(), c.machine(*leader).digest());
}

// A newer snapshot arrives during the install, is held, and is delivered
// after its connection closed (the held copy owns its sender's address:
// before 23b193f it pointed into the closed connection's freed memory).
TEST(RaftNode, HeldSnapshotIsDeliveredAfterItsConnectionClosed) {
  held_install_snapshots({Forged::newest}, false);
}

// Three arrive: each replaces (and frees) the one held before it.
TEST(RaftNode, EachHeldSnapshotReplacesTheOneBefore) {
  held_install_snapshots({Forged::newest, Forged::newest, Forged::newest}, false);
}

// The held one is older than what the install put in place: libraft
// answers it as a snapshot it has (raft_install.c,
// catga_raft_answer_stale_install) and decodes none of it.
TEST(RaftNode, HeldSnapshotOlderThanTheInstalledOneIsAnsweredAndFreed) {
  held_install_snapshots({Forged::newest, Forged::stale}, false);
}

// The node stops while a snapshot is held and another decodes: the close
// waits for the decode, frees the held one, and the node starts again.
TEST(RaftNode, NodeStopsWhileASnapshotIsHeldAndAnotherDecodes) {
  held_install_snapshots({Forged::newest, Forged::stale}, true);
}

}  // namespace
}  // namespace catga::internal
