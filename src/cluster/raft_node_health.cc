// The health half of RaftNode: a node that can no longer keep its promises
// stops itself, once, with the reason in its status and its log — an
// unwritable data_dir (checked once a second), a failed write to the Raft log,
// a handler's failure — and the errors it answers then. A data_dir short of
// space is not a failure: commands are refused with the diagnosis until
// space is freed. A node that knows no leader for long says so
// (watch_leaderless). Loop thread.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "cluster/data_dir.hpp"
#include "cluster/raft_c.h"
#include "cluster/raft_node.hpp"
#include "cluster/raft_node_common.hpp"
#include "core/log.hpp"

namespace catga::internal {

using namespace raft_node_common;

Error RaftNode::outcome_unknown_after_stop() const {
  if (!failed_) return outcome_unknown();
  return Error(Code::deadline_exceeded, "node stopped: " + failure_ + "; outcome unknown");
}

Error RaftNode::no_space_error() {
  const auto now = Clock::now();
  if (now >= disk_diagnosis_until_) {
    // At most once a second: what this node's own data_dir looks like.
    const int err = write_probe(options_.data_dir);
    if (err != 0 && !out_of_space(err)) unwritable_errno_ = err;  // check_data_dir() stops the node
    disk_diagnosis_ = err == 0 ? mib(free_bytes(options_.data_dir)) + " free" : std::strerror(err);
    disk_diagnosis_until_ = now + std::chrono::seconds(1);
  }
  std::string message = "not enough disk space for the Raft log: this node or a majority of voters hold less than "
                        "4 MiB of preallocated log (this node's data_dir " + options_.data_dir.string() + ": " +
                        disk_diagnosis_ + "); nothing was appended, retry once space is freed";
  if (!no_space_) {
    no_space_ = true;
    internal::log().error("raft node {}: refusing commands: {}", options_.node_id, message);
  }
  return Error(Code::resource_exhausted, std::move(message));
}

void RaftNode::check_data_dir() {
  if (!node_mode_ || stopping_) return;
  const auto now = Clock::now();
  if (unwritable_errno_ == 0 && now >= next_data_dir_check_) {
    next_data_dir_check_ = now + std::chrono::seconds(1);
    if (::access(options_.data_dir.c_str(), W_OK) != 0) unwritable_errno_ = errno;
  }
  if (unwritable_errno_ != 0) stop_unwritable(unwritable_errno_);
}

void RaftNode::stop_unwritable(int err) {
  // libraft 0.22.1 drops a log segment whose final rename failed and renames
  // the next ones once it can: the directory then has a gap it refuses to
  // load ("unexpected closed segment"). Stopping while it is unwritable keeps
  // it loadable.
  stop_itself("data_dir " + options_.data_dir.string() + " is not writable (" + std::strerror(err) +
              "); stopped so that the Raft log stays loadable");
}

void RaftNode::stop_itself(const std::string& why) {
  fail_node(why);
  // Observers first: once status() says unavailable, they know.
  if (callbacks_.on_role_changed) callbacks_.on_role_changed(NodeRole::unavailable, last_term_);
  {
    std::lock_guard lock(status_mu_);
    status_.role = NodeRole::unavailable;
  }
  stop_on_loop();
}

void RaftNode::fail_node(const std::string& why) {
  if (failed_) return;
  failed_ = true;
  failure_ = why;
  internal::log().critical("raft node {}: stopping itself: {}", options_.node_id, why);
  std::lock_guard lock(status_mu_);
  status_.failure = why;
  status_.ready = false;
}

// A follower or candidate that knows no leader says so, with what libraft
// holds: chaos seed 559162531 left one in that state for four minutes
// without a line in its log. A member whose peers have a leader is then
// out of that leader's reach (raft_peer_link.h: the leader closes a silent
// connection once the member asks it for votes); one whose peers have none
// either is in a cluster without a majority.
void RaftNode::watch_leaderless(const catga_raft_info& info) {
  const auto now = Clock::now();
  const bool leaderless = info.leader_id == 0 && (info.state == CATGA_STATE_FOLLOWER ||
                                                  info.state == CATGA_STATE_CANDIDATE);
  // A member waiting to be added hears from no leader until it is.
  if (!node_mode_ || stopping_ || failed_ || pending_join_ || !leaderless) {
    leaderless_since_ = {};
    return;
  }
  if (leaderless_since_ == Clock::time_point{}) {
    leaderless_since_ = now;
    next_leaderless_warning_ = now + 20 * options_.election_timeout;
    return;
  }
  if (now < next_leaderless_warning_) return;
  next_leaderless_warning_ = now + 100 * options_.election_timeout;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - leaderless_since_).count();
  const auto self = configured(options_.node_id);
  const std::string listed = !self ? "not in its configuration"
                             : self->first == MemberRole::voter ? "a voter"
                                                                : "a " + std::string(to_string(self->first));
  internal::log().warn(
      "raft node {}: no leader known for {} ms ({} election timeouts): {} in term {}, {}; last log index {}, commit "
      "index {}, applied {}. If the other members have a leader, nothing it sends reaches this node",
      options_.node_id, ms, ms / std::max<std::int64_t>(options_.election_timeout.count(), 1),
      info.state == CATGA_STATE_CANDIDATE ? "candidate" : "follower", info.term, listed, info.last_index,
      info.commit_index, info.applied_index);
}

// ------------------------------------------------------------------ C callbacks

void RaftNode::c_disk_failed(void* ctx, const char* message) {
  auto* self = static_cast<RaftNode*>(ctx);
  std::string why = "a write to the Raft log in " + self->options_.data_dir.string() + " failed (" + message;
  int err = 0;
  if (std::sscanf(message, "write failed: %d", &err) == 1 && err < 0) why += " = " + std::string(std::strerror(-err));
  why += "); stopped before libraft 0.22.1 retries it (its retry crashes the process)";
  self->stop_itself(why);
}

}  // namespace catga::internal
