// src/cluster/raft_node.hpp — one Raft member: replicates opaque records
// through libraft and drives a RecordStateMachine.
//
// What it does: a RaftNode owns a libuv loop thread that runs libraft (durable
// log and snapshots in `data_dir`, TCP transport with TCP_NODELAY). Records
// proposed on the leader are packed, as many as fit in `max_entry_bytes` (at
// most kMaxRecordsPerEntry = 65,536, so session ids stay unique), into
// one log entry (group commit; see entry_format.hpp), at most
// `max_entries_in_flight` entries appended but not yet applied. Every member
// applies every committed record, in log order, through the state machine;
// the leader hands each record's result to its proposer.
//
// Threading: every public method may be called from any thread. Every
// completion, every RecordStateMachine call and every RaftNodeCallbacks call
// runs on the loop thread; they must not block. Destroying the node from the
// loop thread (e.g. inside a completion) is not allowed.
//
// Errors (Result codes in completions):
//   unavailable        nothing happened: not the leader (message names the
//                      leader: "not the leader; leader is 2 at 127.0.0.1:7002",
//                      or "no leader known"), or "node stopped". Retry is safe.
//   deadline_exceeded  "leadership lost; outcome unknown": the entry was
//                      appended but libraft reported leadership loss/shutdown
//                      before it applied. It may still commit.
//   invalid_argument   the record alone exceeds max_entry_bytes.
//   resource_exhausted "not enough disk space for the Raft log: ...": the
//                      leader (this node) or a majority of voters hold less
//                      than 4 MiB of preallocated log (libraft's capacity
//                      check; full or read-only disk). Nothing was appended;
//                      retry once space is freed (libraft re-tries preparing
//                      its log every 5 s and recovers by itself).
//   failed_precondition "node stopped: <failure>": the node stopped itself
//                      (unreadable entry, state machine failure, a failed
//                      write to the log — EIO; entries already appended then
//                      complete with deadline_exceeded); NodeStatus::failure
//                      says why. Not retryable on this node.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "catga/cluster.hpp"
#include "catga/detail/snapshot_sink.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/result.hpp"
#include "cluster/install_decoder.hpp"
#include "cluster/leader_changes.hpp"
#include "cluster/node_stopped.hpp"
#include "cluster/snapshot_child.hpp"
#include "cluster/data_dir_marker.hpp"
#include "cluster/snapshot_schedule.hpp"
#include "cluster/snapshot_write_watch.hpp"

struct catga_raft;       // raft_c.h
struct catga_raft_info;  // raft_c.h

namespace catga::internal {

class LoopStallWatch;

// What every node sees identically for a committed record.
struct ApplyInfo {
  std::uint64_t index;          // Raft log index of the entry
  std::uint64_t term;           // term of the entry
  std::int64_t leader_time_ns;  // unix ns stamped by the leader when it packed the entry
  std::uint32_t position;       // record's position inside the entry (0-based)
  // The entry was in this node's log when it started: it may have been
  // applied before the restart (only the node's own effects, such as events
  // delivered to local handlers, can tell).
  bool replay = false;
};

// Implemented by the replicated state machine. ALL calls on the loop thread.
class RecordStateMachine {
 public:
  virtual ~RecordStateMachine() = default;
  // Applies one committed record; must not fail (business errors live inside
  // the returned bytes, which reach the proposer's completion on the leader).
  // Throwing stops the node (NodeStatus::failure).
  virtual std::string apply(const ApplyInfo& info, std::string_view record) = 0;
  // The whole state as bytes.
  virtual std::string snapshot() = 0;
  // True if write_snapshot may run in a forked child process (see
  // snapshot_child.hpp): it must then not lock, log, or touch threads or
  // descriptors — the child has one thread, and the state it sees is frozen
  // at the snapshot index. The node forks only when this and
  // ClusterOptions::snapshot_in_child are true.
  virtual bool can_snapshot_in_child() const { return false; }
  // The bytes of snapshot(), streamed into `sink`, in the child. Throwing
  // fails that snapshot (and stops the node: libraft cannot fail it).
  virtual void write_snapshot(detail::SnapshotSink& sink) {
    const std::string bytes = snapshot();
    sink.write(bytes.data(), bytes.size());
  }
  // Replaces the whole state. An error stops the node (or fails start()).
  virtual Result<void> restore(std::string_view snapshot) = 0;
  // Optional, for snapshots installed from the leader: decodes `snapshot`
  // beside the live state, on a thread that is not the loop thread (which
  // goes on applying nothing but answering the leader meanwhile); must not
  // touch the live state. The loop thread then calls adopt() instead of
  // restore(). nullptr (the default): restore() does the whole work.
  virtual Result<std::unique_ptr<PreparedRestore>> prepare_restore(std::string_view /*snapshot*/) {
    return std::unique_ptr<PreparedRestore>();
  }
};

struct Applied {
  std::uint64_t index;
  std::string result;
};

// Optional observers, called on the loop thread.
struct RaftNodeCallbacks {
  // Role changed, or this node became leader in a new term.
  std::function<void(NodeRole role, std::uint64_t term)> on_role_changed;
  // The known leader changed (0 and "" when none is known).
  std::function<void(std::uint64_t leader_id, const std::string& leader_address)> on_leader_changed;
  // The applied index moved (to `applied`, which status() reports from now
  // on): wakes what waits for an index instead of polling applied_index().
  std::function<void(std::uint64_t applied)> on_applied;
};

// How start() treats an empty data directory.
enum class JoinMode : std::uint8_t {
  bootstrap_if_empty,  // first start of an initial member: bootstrap `members`
  join_existing,       // a new member: start empty and wait for the leader's
                       // add_member (never bootstrap: two bootstrapped
                       // configurations at index 1 would silently diverge)
};

class RaftNode {
 public:
  using Completion = detail::UniqueFunction<void(Result<Applied>)>;
  using IndexCompletion = detail::UniqueFunction<void(Result<std::uint64_t>)>;
  using VoidCompletion = detail::UniqueFunction<void(Result<void>)>;

  // Validates options, creates data_dir if missing, bootstraps `members` when
  // data_dir is empty, otherwise loads log and snapshot from it, and starts the
  // loop thread. Errors: invalid_argument (options, data_dir not usable),
  // resource_exhausted (data_dir has less than 9 MiB free: libraft needs one
  // 8 MiB log segment), data_loss (corrupt data directory; the message names the file),
  // failed_precondition (stored configuration conflicts with the options,
  // the data directory rules refused the directory — a copy, another cluster
  // id or node, a log that is gone; data_dir_marker.hpp — or libraft refused
  // to start; the message says why). With options.force_new_cluster the
  // configuration is forced first (backup.hpp).
  static Result<std::unique_ptr<RaftNode>> start(const ClusterOptions& options, RecordStateMachine& machine,
                                                 RaftNodeCallbacks callbacks = {},
                                                 JoinMode mode = JoinMode::bootstrap_if_empty);

  // Clean stop: queued proposals and barriers complete with unavailable ("node
  // stopped"), appended ones with deadline_exceeded, raft closes, the loop ends
  // and the thread is joined.
  ~RaftNode();
  // The same stop, without destroying the object: afterwards every call
  // completes at once with unavailable ("node stopped"). Idempotent.
  void stop();
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  struct Proposal {
    std::string record;
    Completion done;
  };

  // Queues `record`; `done` runs on the loop thread exactly once (see the
  // error list above).
  void propose(std::string record, Completion done);
  // Queues every proposal at once (one wake-up of the loop), so records that
  // arrive together — a forwarded frame — share one log entry.
  void propose(std::vector<Proposal> proposals);

  // Completes with an index up to which this leader has confirmed commit (one
  // raft barrier serves every caller queued before it was issued): Raft's
  // read index — the commit index when the barrier was issued, once this
  // leader has committed an entry of its term; the barrier's own index before.
  // unavailable on non-leaders.
  void barrier(IndexCompletion done);

  // The options the node started with.
  const ClusterOptions& options() const noexcept { return options_; }
  // A copy refreshed on the loop thread.
  NodeStatus status() const;
  // status().applied_index without copying the rest.
  std::uint64_t applied_index() const;

  // Leader only: makes this node take a snapshot now (libraft has no call for
  // it: the threshold drops to 1 until a snapshot starts, and a barrier makes
  // sure there is an entry to cover). Completes once a snapshot covering
  // every entry applied (so acknowledged) before the call is written, with
  // the index it covers (one already being written counts only if it covers
  // it; otherwise another is taken after it). unavailable on non-leaders;
  // deadline_exceeded if none was written within `wait` of the call (libraft
  // retries a write it cannot start, e.g. on a full disk, every 5 s; the
  // snapshot is still written once it can be). Application's calls wait
  // kSnapshotWait (30 s), the HTTP endpoints their request timeout.
  void take_snapshot(IndexCompletion done, std::chrono::milliseconds wait);

  // Membership and leadership, one change at a time (failed_precondition if
  // another is in progress). add_member adds the member as spare, then assigns
  // its role (catch-up happens before promotion to voter). Adding a member
  // already in the configuration at the same address is a retry: it completes
  // ok once the member has the role asked for (resuming a promotion whose
  // catch-up failed); another address, or a higher role, is already_exists.
  void add_member(Member member, VoidCompletion done);
  void assign_role(std::uint64_t id, MemberRole role, VoidCompletion done);
  void remove_member(std::uint64_t id, VoidCompletion done);
  // to == 0: libraft picks the most up-to-date voter. Completes ok once this
  // node is no longer leader; aborted if the transfer did not happen.
  void transfer_leadership(std::uint64_t to, VoidCompletion done);

  // Runs f on the loop thread, serialized with apply. If the node has already
  // stopped, f runs on the calling thread.
  void post(detail::UniqueFunction<void()> f);

  // ---- test hooks (deterministic tests on libraft's raft/fixture.h) ----
  // A node without loop or thread: the caller owns the raft instance (created
  // with fsm_for_test()), attaches it, and calls poll_for_test() after
  // stepping the fixture. Destroy the fixture before the node.
  static std::unique_ptr<RaftNode> create_attached_for_test(const ClusterOptions& options,
                                                            RecordStateMachine& machine,
                                                            RaftNodeCallbacks callbacks = {});
  void* fsm_for_test();
  void attach_for_test(void* raft);
  void poll_for_test();

 private:
  struct InFlight;
  struct BarrierBatch;
  struct ChangeOp;

  RaftNode(const ClusterOptions& options, RecordStateMachine& machine, RaftNodeCallbacks callbacks);

  // Any thread.
  void wake_locked();
  bool enqueue_task(detail::UniqueFunction<void()>& f);
  // Hands a configuration change to the loop thread, which starts it (start_change).
  void queue_change(ChangeOp op);
  void request_stop_and_join();

  // Loop thread.
  using Clock = std::chrono::steady_clock;
  void await_snapshot(std::uint64_t before, std::uint64_t target, Clock::time_point deadline,
                      std::chrono::milliseconds wait, IndexCompletion done);
  // Completes the snapshot waiters whose snapshot was written or whose
  // deadline passed, and watches the write of this node's own snapshot
  // (check_snapshot_write) — loop thread: after every I/O pass, the tick included.
  void check_snapshot_waiters();
  void check_snapshot_write();
  void on_wake();
  void on_after_io();
  void drain_inbound();
  void start_stall_watch();
  void observe();
  void pump();
  void issue_barriers();
  void stop_on_loop();
  // Marks the node failed (inside a libraft callback: apply, restore); the
  // next on_after_io() stops it (stop_itself) so that the others elect a leader.
  void fail_node(const std::string& why);
  // fail_node, then close raft now (a failed log write: see raft_c.h,
  // disk_failed) and report the role `unavailable` to on_role_changed.
  void stop_itself(const std::string& why);
  // Node mode, at most once a second: stop_unwritable() if data_dir cannot be written.
  void check_data_dir();
  void stop_unwritable(int err);
  // Node mode, from observe(): warns while this node knows no leader, first
  // after 20 election timeouts, then every 100, with libraft's state.
  void watch_leaderless(const ::catga_raft_info& info);
  Error outcome_unknown_after_stop() const;
  Error no_space_error();
  Error not_leader_error() const;
  Error change_error(int status) const;
  void start_change(ChangeOp* op);
  // The role and stored address of member `id` in the latest configuration.
  std::optional<std::pair<MemberRole, std::string>> configured(std::uint64_t id) const;
  // Copies snapshots_.threshold() into libraft when it changed.
  void sync_snapshot_threshold();
  // A snapshot is being taken (inside c_snapshot): sets its trailing.
  void snapshot_taken();
  bool start_snapshot_child();
  Result<void> restore_on_loop(const void* data, std::size_t len);
  void record_snapshot_pause(Clock::duration pause);
  // The snapshot's bytes exist (encoded inline, or by the child).
  void snapshot_written(std::uint64_t bytes, std::chrono::microseconds encode_time, bool in_child);
  // Pending join: the configuration changed; records the join (seen as a
  // spare) or says once that it is listed as a voter before that.
  void watch_join();

  // C callbacks.
  // What c_apply returns after a failure (see raft_node.cc).
  int apply_failed() const;
  static int c_apply(void* ctx, std::uint64_t index, const void* data, std::size_t len);
  static int c_snapshot(void* ctx, void** data, std::size_t* len);
  static int c_restore(void* ctx, const void* data, std::size_t len);
  static void c_restore_prepare(void* ctx, const void* data, std::size_t len);
  static void c_snapshot_ready(void* ctx);
  static void c_snapshot_cancel(void* ctx);
  static void c_apply_done(void* ctx, void* req, std::uint64_t index, int status);
  static void c_barrier_done(void* ctx, void* req, std::uint64_t index, int status);
  static void c_change_done(void* ctx, void* req, int status);
  static void c_transfer_done(void* ctx, void* req);
  static void c_wake(void* ctx);
  static void c_after_io(void* ctx);
  static void c_disk_failed(void* ctx, const char* message);

  const ClusterOptions options_;
  RecordStateMachine& machine_;
  const RaftNodeCallbacks callbacks_;
  ::catga_raft* raft_ = nullptr;
  bool node_mode_ = false;
  std::thread loop_thread_;

  // Inbound, any thread -> loop thread.
  std::mutex inbound_mu_;
  std::vector<Proposal> inbound_proposals_;
  std::vector<IndexCompletion> inbound_barriers_;
  std::vector<detail::UniqueFunction<void()>> inbound_tasks_;
  bool wake_pending_ = false;
  bool stop_requested_ = false;
  bool loop_gone_ = false;  // no more wakes possible; complete inline
  std::string stopped_because_;  // failure_ when the loop ended ("" = stopped, not failed)

  // Loop thread only.
  std::deque<Proposal> pending_;
  std::map<std::uint64_t, std::unique_ptr<InFlight>> in_flight_;
  std::vector<IndexCompletion> barrier_waiting_;
  struct SnapshotWaiter {
    std::uint64_t before;  // the snapshot index last seen
    std::uint64_t target;  // done once a snapshot covers it
    Clock::time_point deadline;
    std::chrono::milliseconds wait;  // the caller's bound, named in the error
    IndexCompletion done;
  };
  std::vector<SnapshotWaiter> snapshot_waiters_;  // take_snapshot() calls
  std::vector<std::unique_ptr<BarrierBatch>> barriers_out_;
  bool change_busy_ = false;
  bool stopping_ = false;
  std::thread::id loop_id_;  // set by the loop thread itself
  // Times the loop's turns from a thread of its own and logs a stall
  // (loop_stall_watch.hpp). Created and destroyed by the loop thread, node mode only.
  std::unique_ptr<LoopStallWatch> stall_watch_;
  bool failed_ = false;
  std::string failure_;
  bool no_space_ = false;  // the last raft_apply was refused for lack of disk space
  std::string disk_diagnosis_;  // of data_dir, for no_space_error()
  Clock::time_point disk_diagnosis_until_{};
  Clock::time_point next_data_dir_check_{};
  int unwritable_errno_ = 0;  // data_dir found unwritable (not merely full)
  Clock::time_point leaderless_since_{};         // watch_leaderless: {} while a leader is known
  Clock::time_point next_leaderless_warning_{};
  bool pending_join_ = false;  // started empty with join: refuses votes until added
  JoinWatch join_watch_;
  int last_state_ = -1;
  std::uint64_t last_term_ = 0;
  std::uint64_t last_leader_id_ = 0;
  LeaderChanges leader_changes_;
  std::uint64_t last_config_committed_ = ~std::uint64_t{0};
  std::uint64_t last_config_uncommitted_ = ~std::uint64_t{0};
  std::uint64_t terms_corrected_ = 0;  // InstallSnapshot terms corrected, as last logged
  std::uint64_t ready_term_ = 0;     // term of the leader barrier that made us ready
  std::uint64_t ready_barrier_term_ = 0;  // term of the outstanding readiness barrier
  bool ready_ = false;
  std::uint64_t replay_until_ = 0;  // last log index at start
  bool starting_ = true;            // inside start(): a lone voter applies its log there
  std::string snapshot_source_;  // file name while start() loads, for error messages
  // The only writer of libraft's snapshot threshold and trailing (byte
  // bounds, take_snapshot()); threshold_knob_ is the value libraft has.
  SnapshotSchedule snapshots_;
  unsigned threshold_knob_;
  // The child encoding the snapshot libraft is waiting for (node mode).
  std::unique_ptr<SnapshotChild> snapshot_child_;
  bool huge_page_advice_given_ = false;  // loop thread: the slow-fork advice is logged once
  std::uint64_t snapshot_index_taken_ = 0;  // loop thread: the index of the snapshot being taken
  SnapshotWriteWatch snapshot_write_;       // loop thread: is libraft writing it?
  // Snapshots installed from the leader, decoded off the loop thread.
  InstallDecoder installs_;

  mutable std::mutex status_mu_;
  NodeStatus status_;
};

}  // namespace catga::internal
