// The snapshot half of RaftNode: taking a snapshot (inline or in a forked
// child), the threshold that schedules the next one, and restoring one (at
// start or installed from the leader). Loop thread unless a comment says not.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

#include "cluster/data_dir.hpp"
#include "cluster/entry_format.hpp"
#include "cluster/raft_c.h"
#include "cluster/raft_node.hpp"
#include "core/log.hpp"

namespace catga::internal {

namespace {

// ThreadSanitizer cannot follow a fork of a threaded process: encode inline.
#if defined(__SANITIZE_THREAD__)
constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kThreadSanitizer = true;
#else
constexpr bool kThreadSanitizer = false;
#endif
#else
constexpr bool kThreadSanitizer = false;
#endif

// "30 s", "2500 ms".
std::string describe_wait(std::chrono::milliseconds wait) {
  const auto ms = wait.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

}  // namespace

void RaftNode::take_snapshot(IndexCompletion done, std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  post([this, deadline, wait, done = std::move(done)]() mutable {
    // Run inline by post() once the loop is gone: raft_ must not be touched.
    if (std::this_thread::get_id() != loop_id_ || stopping_) return done(Error{Code::unavailable, "node stopped"});
    catga_raft_info info{};
    catga_raft_get_info(raft_, &info);
    const std::uint64_t before = info.snapshot_index;
    // Every command acknowledged before the call is applied: the snapshot
    // must cover it (a backup promises that), and be newer than the last.
    const std::uint64_t target = std::max(before + 1, info.applied_index);
    // The threshold stays at 1 until c_snapshot serves the request; the
    // barrier is an entry past the last snapshot for it to cover.
    snapshots_.request();
    sync_snapshot_threshold();
    barrier([this, before, target, deadline, wait, done = std::move(done)](Result<std::uint64_t> index) mutable {
      post([this, before, target, deadline, wait, index = std::move(index), done = std::move(done)]() mutable {
        if (std::this_thread::get_id() != loop_id_ || stopping_) return done(Error{Code::unavailable, "node stopped"});
        if (!index) {
          snapshots_.cancel_request();
          sync_snapshot_threshold();
          return done(std::move(index));
        }
        await_snapshot(before, target, deadline, wait, std::move(done));
      });
    });
  });
}

// Loop thread: completes once a snapshot covering `target` is written. The
// snapshot is written by libuv's thread pool; check_snapshot_waiters() looks
// again after each I/O pass of the loop (at least every heartbeat tick).
void RaftNode::await_snapshot(std::uint64_t before, std::uint64_t target, Clock::time_point deadline,
                              std::chrono::milliseconds wait, IndexCompletion done) {
  if (std::this_thread::get_id() != loop_id_ || stopping_) return done(Error{Code::unavailable, "node stopped"});
  snapshot_waiters_.push_back({before, target, deadline, wait, std::move(done)});
  check_snapshot_waiters();
}

void RaftNode::check_snapshot_waiters() {
  check_snapshot_write();
  if (snapshot_waiters_.empty() || raft_ == nullptr) return;
  catga_raft_info info{};
  catga_raft_get_info(raft_, &info);
  const auto now = Clock::now();
  auto waiters = std::move(snapshot_waiters_);
  snapshot_waiters_.clear();
  bool again = false;
  for (auto& w : waiters) {
    if (info.snapshot_index >= w.target) {
      w.done(info.snapshot_index);
    } else if (now >= w.deadline) {
      w.done(Error{Code::deadline_exceeded, "the snapshot was not written within " + describe_wait(w.wait) +
                                                " (a full or failing disk? libraft retries the write every 5 s "
                                                "and writes it once it can; last_snapshot_index in the status shows when)"});
    } else {
      // A snapshot started before the call (libraft takes one at a time, e.g.
      // one whose write waited for disk space) was written short of the
      // target: ask for another, with an entry for libraft to check after.
      if (info.snapshot_index > w.before) again = true;
      w.before = info.snapshot_index;
      snapshot_waiters_.push_back(std::move(w));
    }
  }
  if (!again) return;
  snapshots_.request();
  sync_snapshot_threshold();
  barrier([](Result<std::uint64_t>) {});
}

// libraft retries a snapshot write it cannot start (a full disk) without a
// word: say so, and count it (SnapshotWriteWatch).
void RaftNode::check_snapshot_write() {
  if (!snapshot_write_.pending() || raft_ == nullptr) return;
  catga_raft_info info{};
  catga_raft_get_info(raft_, &info);
  const auto& dir = options_.data_dir;
  const SnapshotWriteWatch::Disk disk{[&dir] { return free_bytes(dir); }, [&dir] { return write_probe(dir); }};
  auto report = snapshot_write_.check(info.snapshot_index, Clock::now(), disk);
  if (!report) return;
  if (report->recovered) {
    internal::log().info("raft node {}: {}", options_.node_id, report->message);
    return;
  }
  internal::log().error("raft node {}: {}", options_.node_id, report->message);
  if (report->failed_now) {
    std::lock_guard lock(status_mu_);
    status_.counters.snapshot_write_failures++;
  }
}

// ------------------------------------------------------------------ C callbacks

void RaftNode::sync_snapshot_threshold() {
  if (raft_ == nullptr) return;  // inside catga_raft_open: start() syncs after it
  const unsigned threshold = snapshots_.threshold();
  if (threshold == threshold_knob_) return;
  catga_raft_set_snapshot_threshold(raft_, threshold);
  threshold_knob_ = threshold;
}

void RaftNode::snapshot_taken() {
  catga_raft_info info{};
  if (raft_ != nullptr) catga_raft_get_info(raft_, &info);
  // Still the previous snapshot's index: the new one is recorded once written.
  const std::uint64_t span = info.applied_index > info.snapshot_index ? info.applied_index - info.snapshot_index : 0;
  const std::uint64_t bytes = snapshots_.bytes_since_snapshot();
  snapshot_index_taken_ = info.applied_index;
  const unsigned trailing = snapshots_.taken(span);
  if (raft_ != nullptr) catga_raft_set_snapshot_trailing(raft_, trailing);
  sync_snapshot_threshold();
  internal::log().debug("raft node {}: snapshot at {} after {} entries, {} bytes; keeping {} entries",
                        options_.node_id, info.applied_index, span, bytes, trailing);
}

int RaftNode::c_snapshot(void* ctx, void** data, std::size_t* len) {
  auto* self = static_cast<RaftNode*>(ctx);
  // A failed node's libraft counts entries it did not apply (apply_failed).
  if (self->failed_) return CATGA_RAFT_IOERR;  // libraft skips this snapshot
  const auto started = Clock::now();
  if (self->node_mode_ && self->options_.snapshot_in_child && !kThreadSanitizer && self->machine_.can_snapshot_in_child()) {
    if (self->start_snapshot_child()) {
      self->record_snapshot_pause(Clock::now() - started);
      self->snapshot_taken();
      return CATGA_SNAPSHOT_DEFERRED;
    }
  }
  std::string state;
  try {
    state = self->machine_.snapshot();
  } catch (const std::exception& e) {
    internal::log().error("raft node {}: snapshot failed: {}", self->options_.node_id, e.what());
    return CATGA_RAFT_IOERR;  // libraft skips this snapshot and tries again later
  }
  const std::size_t size = kSnapshotHeaderBytes + state.size();
  auto* buf = static_cast<char*>(catga_raft_malloc(size));
  if (buf == nullptr) return CATGA_RAFT_NOMEM;
  write_snapshot_header(buf, state);
  if (!state.empty()) std::memcpy(buf + kSnapshotHeaderBytes, state.data(), state.size());
  *data = buf;
  *len = size;
  const auto took = Clock::now() - started;
  self->record_snapshot_pause(took);
  self->snapshot_taken();
  self->snapshot_written(size, std::chrono::duration_cast<std::chrono::microseconds>(took), false);
  return 0;
}

// Loop thread, inside c_snapshot: forks the encoder. False (and logged) when
// that failed: the caller encodes on the loop thread instead.
bool RaftNode::start_snapshot_child() {
  auto child = SnapshotChild::start(machine_);
  if (!child) {
    internal::log().warn("raft node {}: cannot encode the snapshot in a child ({}); encoding on the loop thread",
                         options_.node_id, child.error().message());
    return false;
  }
  if (int rv = catga_raft_snapshot_watch(raft_, (*child)->notify_fd()); rv != 0) {
    internal::log().warn("raft node {}: cannot watch the snapshot child ({}); encoding on the loop thread",
                         options_.node_id, catga_raft_strerror(rv));
    return false;  // the child is killed and reaped with *child
  }
  if (!huge_page_advice_given_) {
    if (std::string advice = SnapshotChild::huge_page_advice((*child)->fork_time()); !advice.empty()) {
      huge_page_advice_given_ = true;
      internal::log().warn("raft node {}: {}", options_.node_id, advice);
    }
  }
  snapshot_child_ = std::move(*child);
  return true;
}

void RaftNode::record_snapshot_pause(Clock::duration pause) {
  std::lock_guard lock(status_mu_);
  auto& c = status_.counters;
  c.snapshot_pause = std::chrono::duration_cast<std::chrono::microseconds>(pause);
  c.snapshot_pause_max = std::max(c.snapshot_pause_max, c.snapshot_pause);
}

void RaftNode::snapshot_written(std::uint64_t bytes, std::chrono::microseconds encode_time, bool in_child) {
  snapshot_write_.started(snapshot_index_taken_, bytes, Clock::now());  // libraft writes it next
  snapshots_.written(bytes);
  sync_snapshot_threshold();
  std::lock_guard lock(status_mu_);
  status_.counters.snapshots_taken++;
  if (in_child) status_.counters.snapshots_in_child++;
  status_.counters.snapshot_encode_time = encode_time;
  status_.counters.snapshot_bytes = bytes;
}

void RaftNode::c_snapshot_ready(void* ctx) {
  auto* self = static_cast<RaftNode*>(ctx);
  if (self->snapshot_child_ == nullptr) return;
  auto outcome = self->snapshot_child_->poll();
  if (!outcome) return;  // still encoding
  catga_raft_snapshot_unwatch(self->raft_);
  self->snapshot_child_.reset();
  if (!*outcome) {
    // libraft cannot be told that a snapshot it started failed, and the state
    // it covers is gone: this node stops; its log is intact, a restart recovers.
    self->stop_itself("writing a snapshot failed: " + outcome->error().message());
    return;
  }
  const SnapshotChild::Written& w = **outcome;
  self->snapshot_written(w.bytes, w.encode_time, true);
  if (int rv = catga_raft_snapshot_written(self->raft_, w.memfd, w.bytes); rv != 0) {
    self->stop_itself(std::string("writing a snapshot failed: libraft: ") + catga_raft_strerror(rv));
  }
}

void RaftNode::c_snapshot_cancel(void* ctx) { static_cast<RaftNode*>(ctx)->snapshot_child_.reset(); }

// libuv pool thread, while libraft writes a snapshot installed from the
// leader (raft_c.c, installPut): decodes it for c_restore.
void RaftNode::c_restore_prepare(void* ctx, const void* data, std::size_t len) {
  auto* self = static_cast<RaftNode*>(ctx);
  InstallDecoder::Outcome outcome = Error(Code::internal, "state machine threw");
  try {
    auto bytes = unwrap_snapshot(std::string_view(static_cast<const char*>(data), len));
    if (!bytes) outcome = bytes.error();
    else outcome = self->machine_.prepare_restore(*bytes);
  } catch (const std::exception& e) {
    outcome = Error(Code::internal, std::string("state machine threw: ") + e.what());
  }
  self->installs_.put(data, len, std::move(outcome));
}

int RaftNode::c_restore(void* ctx, const void* data, std::size_t len) {
  auto* self = static_cast<RaftNode*>(ctx);
  const std::string source = self->snapshot_source_.empty() ? "snapshot installed from the leader"
                                                             : "snapshot " + self->snapshot_source_;
  Result<void> r = Error(Code::internal, "state machine threw");
  try {
    r = self->restore_on_loop(data, len);
  } catch (const std::exception& e) {
    r = Error(Code::internal, std::string("state machine threw: ") + e.what());
  }
  if (!r) {
    self->fail_node("restoring " + source + " failed: " + r.error().message());
    return CATGA_RAFT_CORRUPT;
  }
  // An installed snapshot is the leader's: the schedule staggers against it.
  std::uint64_t leader_id = 0;
  if (self->snapshot_source_.empty() && self->raft_ != nullptr) {
    catga_raft_info info{};
    catga_raft_get_info(self->raft_, &info);
    leader_id = info.leader_id;
  }
  self->snapshots_.restored(len, leader_id);
  self->sync_snapshot_threshold();
  {
    std::lock_guard lock(self->status_mu_);
    self->status_.counters.snapshots_installed++;
    self->status_.counters.snapshot_bytes = len;
  }
  return 0;
}

// Inside c_restore: adopts what c_restore_prepare decoded from these bytes,
// or decodes them here (at start, or when the machine cannot prepare).
Result<void> RaftNode::restore_on_loop(const void* data, std::size_t len) {
  if (auto prepared = installs_.take(data, len); prepared && (!*prepared || **prepared != nullptr)) {
    if (!*prepared) return prepared->error();
    Result<void> adopted = (**prepared)->adopt();
    installs_.dispose(std::move(**prepared));
    return adopted;
  }
  auto bytes = unwrap_snapshot(std::string_view(static_cast<const char*>(data), len));
  if (!bytes) return bytes.error();
  return machine_.restore(*bytes);
}

}  // namespace catga::internal
