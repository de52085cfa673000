#include "cluster/raft_node.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <chrono>
#include <cstdio>
#include <tuple>
#include <cstring>
#include <exception>
#include <optional>
#include <filesystem>
#include <system_error>

#include "core/log.hpp"

#include "cluster/backup.hpp"
#include "cluster/data_dir.hpp"
#include "cluster/data_dir_marker.hpp"
#include "cluster/entry_format.hpp"
#include "cluster/loop_stall_watch.hpp"
#include "cluster/member_address.hpp"
#include "cluster/raft_auth.h"
#include "cluster/raft_c.h"
#include "cluster/raft_foreign.h"
#include "cluster/raft_node_common.hpp"
#include "cluster/wall_clock.hpp"

namespace catga::internal {

namespace fs = std::filesystem;

struct RaftNode::InFlight {
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  std::vector<Completion> completions;
  std::vector<std::string> results;
};

struct RaftNode::BarrierBatch {
  bool readiness = false;  // the barrier a new leader commits before it is ready
  std::uint64_t term = 0;
  // The commit index when the barrier was issued, by a leader that had
  // committed an entry of its term (0 otherwise): the read index its waiters
  // get once the barrier commits (see issue_barriers).
  std::uint64_t read_index = 0;
  std::vector<IndexCompletion> waiters;
};

namespace {

using namespace raft_node_common;

NodeRole role_of(int state) {
  switch (state) {
    case CATGA_STATE_FOLLOWER: return NodeRole::follower;
    case CATGA_STATE_CANDIDATE: return NodeRole::candidate;
    case CATGA_STATE_LEADER: return NodeRole::leader;
    default: return NodeRole::unavailable;
  }
}

std::int64_t unix_now_ns() { return wall_clock_ns(); }

catga_raft_callbacks make_callbacks(void* self, decltype(catga_raft_callbacks::apply) apply,
                                    decltype(catga_raft_callbacks::snapshot) snapshot,
                                    decltype(catga_raft_callbacks::restore) restore,
                                    decltype(catga_raft_callbacks::apply_done) apply_done,
                                    decltype(catga_raft_callbacks::barrier_done) barrier_done,
                                    decltype(catga_raft_callbacks::change_done) change_done,
                                    decltype(catga_raft_callbacks::transfer_done) transfer_done,
                                    decltype(catga_raft_callbacks::wake) wake,
                                    decltype(catga_raft_callbacks::after_io) after_io) {
  catga_raft_callbacks cb{};
  cb.ctx = self;
  cb.apply = apply;
  cb.snapshot = snapshot;
  cb.restore = restore;
  cb.apply_done = apply_done;
  cb.barrier_done = barrier_done;
  cb.change_done = change_done;
  cb.transfer_done = transfer_done;
  cb.wake = wake;
  cb.after_io = after_io;
  return cb;
}

// A connection to or from the Raft port was refused (raft_auth.c; rate-limited there).
void log_transport_refused(void* ctx, const char* line) {
  log().warn("raft node {}: {}", static_cast<RaftNode*>(ctx)->options().node_id, line);
}

// A member asked this leader for votes: it has heard nothing from it for an
// election timeout (raft_peer_link.h: the connection is reset at most once
// per three election timeouts, said at most once per 100). Info: a member
// that restarted asks too.
void log_peer_link_reset(void* ctx, std::uint64_t id, std::uint64_t term, int closed) {
  log().info("raft node {}: node {} asks for votes although this node leads term {}: it heard nothing from this node "
             "for an election timeout; {}",
             static_cast<RaftNode*>(ctx)->options().node_id, id, term,
             closed != 0 ? "closed the connection to it, which reported no error, to dial again"
                         : "no connection to it is open (libraft dials it every second)");
}

}  // namespace

// ------------------------------------------------------------------ lifecycle

RaftNode::RaftNode(const ClusterOptions& options, RecordStateMachine& machine, RaftNodeCallbacks callbacks)
    : options_(options),
      machine_(machine),
      callbacks_(std::move(callbacks)),
      snapshots_(options_),
      threshold_knob_(snapshots_.threshold()) {
  status_.id = options_.node_id;
  for (const Member& m : options_.members) {
    if (m.id == options_.node_id) status_.address = m.address;
  }
}

Result<std::unique_ptr<RaftNode>> RaftNode::start(const ClusterOptions& options, RecordStateMachine& machine,
                                                  RaftNodeCallbacks callbacks, JoinMode mode) {
  if (auto v = options.validate(); !v) return v.error();
  if (auto prepared = prepare_data_dir(options.data_dir); !prepared) return prepared.error();
  if (options.force_new_cluster) {
    if (auto forced = force_new_cluster(options); !forced) return forced.error();
  }
  // The data directory rules (data_dir_marker.hpp): whether to bootstrap, or
  // to refuse a directory that is a copy, of another cluster, or emptied.
  auto decision = decide_start(options, mode == JoinMode::join_existing);
  if (!decision) {
    internal::log().error("raft node {}: {}", options.node_id, decision.error().message());
    return decision.error();
  }

  std::unique_ptr<RaftNode> node(new RaftNode(options, machine, std::move(callbacks)));
  node->node_mode_ = true;

  // The configuration carries explicit peer addresses (member_address.hpp);
  // the address book holds the bare Raft addresses this node dials.
  std::vector<std::string> configured;
  for (const Member& m : options.members) configured.push_back(internal::configuration_address(m));
  std::vector<catga_raft_member> members;
  std::vector<catga_raft_member> book;
  for (std::size_t i = 0; i < options.members.size(); ++i) {
    const Member& m = options.members[i];
    members.push_back({m.id, configured[i].c_str(), c_role(m.role)});
    book.push_back({m.id, m.address.c_str(), c_role(m.role)});
  }
  const std::string dir = options.data_dir.string();
  catga_raft_config config{};
  config.id = options.node_id;
  config.address = node->status_.address.c_str();
  config.dir = dir.c_str();
  config.election_timeout_ms = static_cast<unsigned>(options.election_timeout.count());
  config.heartbeat_ms = static_cast<unsigned>(options.heartbeat_interval.count());
  config.snapshot_threshold = node->threshold_knob_;
  config.snapshot_trailing = node->snapshots_.trailing();
  config.bootstrap = decision->bootstrap ? 1 : 0;
  config.members = members.data();
  config.n_members = static_cast<unsigned>(members.size());
  config.address_book = book.data();
  config.n_address_book = static_cast<unsigned>(book.size());
  config.secret = options.peer_secret.data();
  config.secret_len = options.peer_secret.size();
  std::vector<catga_auth_secret> accepted;
  for (const auto& secret : options.accepted_peer_secrets) accepted.push_back({secret.data(), secret.size()});
  config.accepted_secrets = accepted.data();
  config.n_accepted_secrets = static_cast<unsigned>(accepted.size());
  const std::string secret_file = options.peer_secret_file.string();
  config.secret_file = secret_file.c_str();
  config.cluster_id = options.cluster_id.c_str();
  config.handshake_timeout_ms = static_cast<unsigned>(options.peer_handshake_timeout.count());
  const std::string tls_ca = options.tls_ca_file.string(), tls_cert = options.tls_cert_file.string(),
                    tls_key = options.tls_key_file.string();
  config.tls_ca_file = tls_ca.c_str();
  config.tls_cert_file = tls_cert.c_str();
  config.tls_key_file = tls_key.c_str();
  const std::string tls_crl = options.tls_crl_file.string(),
                    tls_label = "raft node " + std::to_string(options.node_id);
  config.tls_crl_file = tls_crl.c_str();
  config.tls_label = tls_label.c_str();
  if (options.peer_secret.empty() && options.peer_secret_file.empty() && !options.tls_enabled()) {
    internal::log().warn(
        "raft node {}: INSECURE MODE: no peer secret, the Raft port {} and the peer channel accept anyone who "
        "can reach them (one forged message can depose the leader or append entries); set a peer secret "
        "(docs/security.md)",
        options.node_id, node->status_.address);
  }

  auto cb = make_callbacks(node.get(), &c_apply, &c_snapshot, &c_restore, &c_apply_done, &c_barrier_done,
                           &c_change_done, &c_transfer_done, &c_wake, &c_after_io);
  cb.disk_failed = &c_disk_failed;
  cb.transport_refused = &log_transport_refused;
  cb.peer_link_reset = &log_peer_link_reset;
  cb.snapshot_ready = &c_snapshot_ready;
  cb.snapshot_cancel = &c_snapshot_cancel;
  cb.restore_prepare = &c_restore_prepare;
  char errmsg[512] = {0};
  node->snapshot_source_ = newest_snapshot(options.data_dir).name;
  int rv = catga_raft_open(&config, &cb, &node->raft_, errmsg, sizeof errmsg);
  node->snapshot_source_.clear();  // later restores come from the leader
  if (rv != 0) {
    std::string why = errmsg;
    if (node->failed_) why = node->failure_;
    // libraft reports unreadable files while loading ("io: load closed segment
    // <name>: ...") as I/O errors; they mean a corrupt data directory.
    const bool corrupt = node->failed_ || rv == CATGA_RAFT_CORRUPT || rv == CATGA_RAFT_MALFORMED ||
                         why.find("load ") != std::string::npos;
    const Code code = corrupt ? Code::data_loss : Code::failed_precondition;
    internal::log().error("raft node {}: cannot start in {}: {}", options.node_id, dir, why);
    node->node_mode_ = false;  // nothing to close
    return Error(code, "cannot start Raft node " + std::to_string(options.node_id) + " in " + dir + ": " + why);
  }

  // The stored configuration must contain this node. Its addresses are the
  // view of whoever wrote it (after a snapshot install: the leader's); this
  // node listens at, and reaches its peers through, its own options (the
  // address book handed to catga_raft_open above).
  const unsigned n = catga_raft_n_members(node->raft_);
  std::string stored;
  std::string stored_self;
  std::string unnamed_voters;  // voters of the stored configuration the options do not name
  bool self_found = false;
  for (unsigned i = 0; i < n; ++i) {
    catga_raft_member m{};
    catga_raft_get_member(node->raft_, i, &m);
    stored += (stored.empty() ? "" : ", ") + std::to_string(m.id) + "@" + m.address;
    if (m.role == CATGA_ROLE_VOTER && m.id != options.node_id &&
        std::none_of(options.members.begin(), options.members.end(),
                     [&](const Member& named) { return named.id == m.id; })) {
      unnamed_voters += (unnamed_voters.empty() ? "" : ", ") + std::to_string(m.id);
    }
    if (m.id == options.node_id) {
      self_found = true;
      Member stored_member;
      internal::split_configuration_address(m.address, stored_member);
      stored_self = stored_member.address;
    }
  }
  const bool awaiting_join = n == 0 && mode == JoinMode::join_existing;  // config comes from the leader
  if (!awaiting_join && !self_found) {
    std::string why = "node " + std::to_string(options.node_id) + " is not in the stored configuration of " + dir +
                      " (stored members: " + stored + ")";
    internal::log().error("raft node {}: {}", options.node_id, why);
    node->request_stop_and_join();
    return Error(Code::failed_precondition, why);
  }
  if (!unnamed_voters.empty()) {
    // The bootstrap guard asks only the members the options name: with this
    // node's data directory emptied, these options would let it bootstrap a
    // new cluster (alone, if they name nobody else).
    internal::log().warn(
        "raft node {}: the stored configuration has voters the cluster options (--cluster) do not name: {}. Update "
        "--cluster to name every member (stored members: {}): the bootstrap guard asks only the members it names, "
        "and with none named an emptied data directory bootstraps a new cluster (docs/operations.md, \"Growing "
        "from one member\")",
        options.node_id, unnamed_voters, stored);
  }
  if (self_found && stored_self != node->status_.address) {
    internal::log().info(
        "raft node {}: the stored configuration names this node {} (the view of the node that wrote it); "
        "listening at {} and reaching peers at the addresses of the options",
        options.node_id, stored_self, node->status_.address);
  }

  if (decision->write_after_open) {
    if (auto written = write_marker(options.data_dir, *decision->write_after_open); !written) {
      internal::log().error("raft node {}: cannot write the cluster marker: {}", options.node_id,
                            written.error().message());
      node->request_stop_and_join();
      return written.error();
    }
  }
  node->pending_join_ = decision->refuse_votes;
  catga_raft_set_refuse_votes(node->raft_, node->pending_join_ ? 1 : 0);

  // Entries already in the log now may have been applied before a restart:
  // their ApplyInfo says so (events raised by them may be replays).
  {
    catga_raft_info info{};
    catga_raft_get_info(node->raft_, &info);
    node->replay_until_ = info.last_index;
    node->starting_ = false;
  }
  // A lone voter replayed its log inside catga_raft_open, before raft_ was
  // set: if that crossed the byte threshold, libraft snapshots at its next check.
  node->sync_snapshot_threshold();

  // Logged before the loop thread exists (the first spdlog use initializes its registry).
  internal::log().info("raft node {}: started at {} in {} ({})", options.node_id, node->status_.address, dir,
               config.bootstrap ? "bootstrapped" : node->pending_join_ ? "waiting to be added; not voting" : "loaded from disk");
  node->loop_thread_ = std::thread([raw = node.get()] {
    raw->loop_id_ = std::this_thread::get_id();
    const std::string name = "catga-raft-" + std::to_string(raw->options_.node_id);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    // libuv writes to sockets without MSG_NOSIGNAL: a peer that went away
    // would raise SIGPIPE and kill the process. Blocked in this thread only,
    // the write fails with EPIPE instead; the process's disposition is untouched.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    raw->start_stall_watch();
    catga_raft_run(raw->raft_);
    raw->stall_watch_.reset();
  });
  return node;
}

std::unique_ptr<RaftNode> RaftNode::create_attached_for_test(const ClusterOptions& options,
                                                             RecordStateMachine& machine,
                                                             RaftNodeCallbacks callbacks) {
  std::unique_ptr<RaftNode> node(new RaftNode(options, machine, std::move(callbacks)));
  auto cb = make_callbacks(node.get(), &c_apply, &c_snapshot, &c_restore, &c_apply_done, &c_barrier_done,
                           &c_change_done, &c_transfer_done, nullptr, nullptr);
  node->raft_ = catga_raft_glue_new(&cb);
  return node;
}

void* RaftNode::fsm_for_test() { return catga_raft_glue_fsm(raft_); }
void RaftNode::attach_for_test(void* raft) {
  catga_raft_glue_attach(raft_, raft);
  // The node owns the snapshot knobs in both modes: the options win over
  // whatever the fixture set.
  catga_raft_set_snapshot_threshold(raft_, threshold_knob_);
  catga_raft_set_snapshot_trailing(raft_, snapshots_.trailing());
}
void RaftNode::poll_for_test() {
  drain_inbound();
  on_after_io();
}

RaftNode::~RaftNode() { request_stop_and_join(); }

void RaftNode::stop() { request_stop_and_join(); }

void RaftNode::request_stop_and_join() {
  if (raft_ == nullptr) return;
  if (node_mode_ && loop_thread_.joinable()) {
    {
      std::lock_guard lock(inbound_mu_);
      stop_requested_ = true;
      wake_locked();
    }
    loop_thread_.join();
  } else if (node_mode_) {
    // Thread never started (start() failed late): stop on this thread.
    {
      std::lock_guard lock(inbound_mu_);
      stop_requested_ = true;
    }
    stop_on_loop();
    catga_raft_run(raft_);
  } else {
    // Attached mode: the fixture owns raft; just fail what is left.
    {
      std::lock_guard lock(inbound_mu_);
      stop_requested_ = true;
    }
    stopping_ = true;
    stop_on_loop();
  }
  // Anything still queued (possible only after the loop ended) fails now;
  // from here on other threads complete inline and never touch raft_.
  std::vector<Proposal> proposals;
  std::vector<IndexCompletion> barriers;
  std::vector<detail::UniqueFunction<void()>> tasks;
  std::string failure;
  {
    std::lock_guard lock(inbound_mu_);
    loop_gone_ = true;
    failure = stopped_because_;
    proposals.swap(inbound_proposals_);
    barriers.swap(inbound_barriers_);
    tasks.swap(inbound_tasks_);
  }
  const int rc = catga_raft_free(raft_);
  raft_ = nullptr;
  if (rc != 0) internal::log().error("raft node {}: loop did not close cleanly ({})", options_.node_id, rc);
  for (auto& p : proposals) p.done(stopped(failure));
  for (auto& b : barriers) b(stopped(failure));
  for (auto& t : tasks) t();
}

// ------------------------------------------------------------------ any thread

void RaftNode::wake_locked() {
  if (wake_pending_ || loop_gone_) return;
  wake_pending_ = true;
  if (node_mode_ && raft_ != nullptr) catga_raft_wake(raft_);
}

void RaftNode::propose(std::string record, Completion done) {
  std::string failure;
  {
    std::lock_guard lock(inbound_mu_);
    if (!loop_gone_) {
      inbound_proposals_.push_back({std::move(record), std::move(done)});
      wake_locked();
      return;
    }
    failure = stopped_because_;
  }
  done(stopped(failure));
}

void RaftNode::propose(std::vector<Proposal> proposals) {
  std::string failure;
  {
    std::lock_guard lock(inbound_mu_);
    if (!loop_gone_) {
      if (inbound_proposals_.empty()) {
        inbound_proposals_.swap(proposals);
      } else {
        for (auto& p : proposals) inbound_proposals_.push_back(std::move(p));
      }
      wake_locked();
      return;
    }
    failure = stopped_because_;
  }
  const Error e = stopped(failure);
  for (auto& p : proposals) p.done(e);
}

void RaftNode::barrier(IndexCompletion done) {
  std::string failure;
  {
    std::lock_guard lock(inbound_mu_);
    if (!loop_gone_) {
      inbound_barriers_.push_back(std::move(done));
      wake_locked();
      return;
    }
    failure = stopped_because_;
  }
  done(stopped(failure));
}

bool RaftNode::enqueue_task(detail::UniqueFunction<void()>& f) {
  std::lock_guard lock(inbound_mu_);
  if (loop_gone_) return false;
  inbound_tasks_.push_back(std::move(f));
  wake_locked();
  return true;
}

void RaftNode::post(detail::UniqueFunction<void()> f) {
  if (!enqueue_task(f)) f();
}

NodeStatus RaftNode::status() const {
  std::lock_guard lock(status_mu_);
  return status_;
}

std::uint64_t RaftNode::applied_index() const {
  std::lock_guard lock(status_mu_);
  return status_.applied_index;
}

// ------------------------------------------------------------------ loop thread

void RaftNode::on_wake() {
  bool stop = false;
  {
    std::lock_guard lock(inbound_mu_);
    stop = stop_requested_;
  }
  drain_inbound();
  if (stop) {
    stop_on_loop();
    return;
  }
  if (failed_ && node_mode_) return stop_itself(failure_);  // as in on_after_io
  observe();
  check_snapshot_waiters();
  pump();
  issue_barriers();
}

namespace {

// Why a node that bootstrapped alone stops once another cluster that lists
// it reaches it (raft_foreign.h), or nothing.
std::optional<std::string> foreign_cluster(const catga_raft* raft, const ClusterOptions& options) {
  std::uint64_t from = 0, term = 0, own_term = 0;
  char address[256] = {0};
  if (catga_raft_foreign_sender(raft, &from, &term, &own_term, address, sizeof address) == 0) return std::nullopt;
  const std::string self = std::to_string(options.node_id);
  return "member " + self + " bootstrapped a cluster of its own (its configuration has only ever named itself), "
         "and member " + std::to_string(from) + (address[0] != 0 ? " at " + std::string(address) : std::string()) +
         " sent it a Raft message in term " + std::to_string(term) + " (this node is in term " +
         std::to_string(own_term) + "): another cluster lists member " + self +
         " as a member. Its data directory " + options.data_dir.string() +
         " was most likely emptied and it was started again with a --cluster naming only itself, which bootstraps a "
         "new cluster; letting that cluster in would keep this node's entries wherever index and term match, and the "
         "members would differ for good. It refuses that cluster's messages and stops; what it acknowledged since "
         "its bootstrap is not in that cluster. Bring it back by remove -> wipe -> add: remove member " + self +
         " (catgactl members remove " + self + ", or DELETE /raft/members/" + self +
         " on that cluster's leader), empty its data directory, start it with --join (ClusterOptions::join) and a "
         "--cluster naming every member, then add it again (catgactl members add / POST /raft/members); "
         "docs/operations.md, \"Growing from one member\"";
}

}  // namespace

void RaftNode::on_after_io() {
  if (stopping_) return;
  // A failed apply or restore (fail_node, inside a libraft callback) stalls
  // libraft; leave for real so that the others elect a leader.
  if (failed_ && node_mode_) return stop_itself(failure_);
  if (node_mode_) {
    if (auto why = foreign_cluster(raft_, options_)) return stop_itself(*why);
  }
  check_data_dir();
  if (stopping_) return;
  observe();
  check_snapshot_waiters();
  pump();
  issue_barriers();
}

// Loop thread, before the loop runs. A turn late by a fifth of the election
// timeout is logged with what the thread was seen doing meanwhile; from half
// the election timeout on as a warning (a follower may stand for election).
void RaftNode::start_stall_watch() {
  LoopStallWatch::Options o;
  o.report_after = std::max<Clock::duration>(options_.election_timeout / 5, std::chrono::milliseconds(20));
  o.period = o.report_after / 4;
  stall_watch_ = std::make_unique<LoopStallWatch>(
      static_cast<pid_t>(::gettid()), o,
      [this] {
        std::lock_guard lock(inbound_mu_);
        wake_locked();
      },
      [this](const LoopStallWatch::Stall& stall) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(stall.length).count();
        const auto level = stall.length * 2 >= options_.election_timeout ? spdlog::level::warn : spdlog::level::info;
        internal::log().log(level, "raft node {}: the loop thread stalled {} ms (seen: {}; election timeout {} ms)",
                            options_.node_id, ms, stall.seen.empty() ? "nothing" : stall.seen,
                            options_.election_timeout.count());
      });
}

void RaftNode::drain_inbound() {
  if (stall_watch_) stall_watch_->turned();
  std::vector<Proposal> proposals;
  std::vector<IndexCompletion> barriers;
  std::vector<detail::UniqueFunction<void()>> tasks;
  {
    std::lock_guard lock(inbound_mu_);
    wake_pending_ = false;
    proposals.swap(inbound_proposals_);
    barriers.swap(inbound_barriers_);
    tasks.swap(inbound_tasks_);
  }
  for (auto& p : proposals) pending_.push_back(std::move(p));
  for (auto& b : barriers) barrier_waiting_.push_back(std::move(b));
  for (auto& t : tasks) t();
}

Error RaftNode::not_leader_error() const {
  std::lock_guard lock(status_mu_);
  if (status_.leader_id == 0 || status_.leader_id == options_.node_id) {
    return Error(Code::unavailable, "not the leader; no leader known");
  }
  return Error(Code::unavailable, "not the leader; leader is " + std::to_string(status_.leader_id) + " at " +
                                      status_.leader_address);
}

void RaftNode::observe() {
  if (raft_ == nullptr) return;
  catga_raft_info info{};
  catga_raft_get_info(raft_, &info);
  const bool role_changed = info.state != last_state_;
  const bool term_changed = info.term != last_term_;
  const bool leader_changed = info.leader_id != last_leader_id_;
  const bool config_changed = info.config_committed_index != last_config_committed_ ||
                              info.config_uncommitted_index != last_config_uncommitted_;
  const NodeRole role = role_of(info.state);
  const bool was_leader = last_state_ == CATGA_STATE_LEADER;
  const bool first = last_state_ == -1;
  last_state_ = info.state;
  last_term_ = info.term;
  last_leader_id_ = info.leader_id;
  last_config_committed_ = info.config_committed_index;
  last_config_uncommitted_ = info.config_uncommitted_index;
  if (info.snapshot_terms_corrected != terms_corrected_) {
    // libraft 0.22.1 named the wrong term in an InstallSnapshot: a newer
    // snapshot finished while it read one to send (raft_snapshot_send.h).
    // Guarded; worth knowing when a follower's install is investigated.
    internal::log().warn("raft node {}: libraft sent {} InstallSnapshot(s) naming another snapshot's term; "
                         "corrected to the term of the snapshot sent (a known libraft 0.22.1 bug, guarded)",
                         options_.node_id, info.snapshot_terms_corrected - terms_corrected_);
    terms_corrected_ = info.snapshot_terms_corrected;
  }
  watch_leaderless(info);

  if ((role_changed || term_changed) && (role != NodeRole::leader || term_changed)) ready_ = false;
  if (role == NodeRole::leader && !ready_ && ready_barrier_term_ != info.term && !stopping_ && !failed_) {
    // A new leader commits a barrier of its own term before it reports ready.
    auto batch = std::make_unique<BarrierBatch>();
    batch->readiness = true;
    batch->term = info.term;
    if (catga_raft_barrier(raft_, batch.get()) == 0) {
      ready_barrier_term_ = info.term;
      barriers_out_.push_back(std::move(batch));
    }
  }

  bool applied_moved = false;
  {
    std::lock_guard lock(status_mu_);
    status_.role = role;
    status_.term = info.term;
    status_.leader_id = info.leader_id;
    if (leader_changed) {
      Member leader;
      internal::split_configuration_address(info.leader_address, leader);
      status_.leader_address = leader.address;
    }
    if (leader_changes_.observe(info.leader_id, info.term)) status_.counters.leader_changes++;
    status_.commit_index = info.commit_index;
    applied_moved = status_.applied_index != info.applied_index;
    status_.applied_index = info.applied_index;
    status_.last_snapshot_index = info.snapshot_index;
    status_.bytes_since_snapshot = snapshots_.bytes_since_snapshot();
    status_.counters.snapshots_sent = info.snapshots_sent;
    status_.counters.snapshot_sends_skipped = info.snapshot_sends_skipped;
    status_.leader_last_contact =
        info.leader_contact_ms == UINT64_MAX
            ? std::nullopt
            : std::optional<std::chrono::milliseconds>(std::chrono::milliseconds(info.leader_contact_ms));
    status_.ready = ready_ && role == NodeRole::leader && !failed_;
    if (config_changed || role_changed) {
      status_.members.clear();
      const unsigned n = catga_raft_n_members(raft_);
      for (unsigned i = 0; i < n; ++i) {
        catga_raft_member m{};
        catga_raft_get_member(raft_, i, &m);
        Member member{m.id, {}, member_role(m.role)};
        internal::split_configuration_address(m.address, member);
        status_.members.push_back(MemberStatus{std::move(member), std::nullopt});
      }
    }
    status_.failure = failure_;
  }

  if (role_changed || (term_changed && role == NodeRole::leader)) {
    if (first) {
      internal::log().info("raft node {}: {} in term {}", options_.node_id, to_string(role), info.term);
    } else if (role == NodeRole::leader) {
      internal::log().info("raft node {}: became leader in term {}", options_.node_id, info.term);
    } else if (was_leader) {
      internal::log().info("raft node {}: lost leadership in term {} (now {})", options_.node_id, info.term,
                   to_string(role));
    } else if (role == NodeRole::unavailable && !stopping_) {
      // Older libraft releases turned themselves unavailable after an
      // internal error (no message taken, no election started any more);
      // 0.22.1 has the state but never enters it once started.
      internal::log().warn("raft node {}: libraft became unavailable in term {}; this node takes part in "
                           "nothing until it restarts",
                           options_.node_id, info.term);
    }
    if (callbacks_.on_role_changed) callbacks_.on_role_changed(role, info.term);
  }
  if (leader_changed && callbacks_.on_leader_changed) {
    callbacks_.on_leader_changed(info.leader_id, std::string(info.leader_address));
  }
  if (applied_moved && callbacks_.on_applied) callbacks_.on_applied(info.applied_index);
  if (pending_join_ && config_changed) watch_join();
}

void RaftNode::watch_join() {
  std::optional<MemberRole> self;
  if (auto present = configured(options_.node_id)) self = present->first;
  switch (join_watch_.observe(self)) {
    case JoinWatch::Verdict::waiting: return;
    case JoinWatch::Verdict::listed_as_voter:
      internal::log().warn("raft node {}: {}", options_.node_id, listed_as_voter_message(options_));
      return;
    case JoinWatch::Verdict::joined: break;
  }
  if (auto written = write_marker(options_.data_dir, {options_.cluster_id, options_.node_id, JoinState::joined, {}});
      !written) {
    return stop_itself("cannot record that this node was added: " + written.error().message());
  }
  pending_join_ = false;
  catga_raft_set_refuse_votes(raft_, 0);
  internal::log().info("raft node {}: added to the configuration as a {}; answers vote requests from now on",
                       options_.node_id, to_string(self.value_or(MemberRole::spare)));
}

void RaftNode::pump() {
  if (pending_.empty()) return;
  if (stopping_ || failed_ || last_state_ != CATGA_STATE_LEADER) {
    // Nothing can be appended: every queued proposal gets the reason, in order
    // (a completion may queue more; those get it too).
    const Error e = stopping_ || failed_ ? stopped(failure_) : not_leader_error();
    while (!pending_.empty()) {
      auto p = std::move(pending_.front());
      pending_.pop_front();
      p.done(e);
    }
    return;
  }
  const std::size_t max_bytes = options_.max_entry_bytes;
  while (!pending_.empty() && in_flight_.size() < options_.max_entries_in_flight) {
    std::size_t count = 0;
    std::size_t bytes = 0;
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      const std::size_t s = it->record.size();
      if (record_batch_size(count + 1, bytes + s) > max_bytes) break;
      ++count;
      bytes += s;
      if (count == kMaxRecordsPerEntry) break;
    }
    if (count == 0) {
      // The first record alone does not fit.
      auto p = std::move(pending_.front());
      pending_.pop_front();
      p.done(Error(Code::invalid_argument, "record of " + std::to_string(p.record.size()) +
                                               " bytes exceeds max_entry_bytes (" + std::to_string(max_bytes) +
                                               ")"));
      continue;
    }
    const std::size_t size = record_batch_size(count, bytes);
    auto flight = std::make_unique<InFlight>();
    flight->term = last_term_;
    flight->completions.reserve(count);
    char* buf = static_cast<char*>(catga_raft_malloc(size));
    if (buf == nullptr) {
      for (std::size_t i = 0; i < count; ++i) {
        auto p = std::move(pending_.front());
        pending_.pop_front();
        p.done(Error(Code::resource_exhausted, "out of memory"));
      }
      continue;
    }
    RecordBatchWriter writer(buf, size, EntryHeader{last_term_, unix_now_ns()}, static_cast<std::uint32_t>(count));
    for (std::size_t i = 0; i < count; ++i) {
      writer.add(pending_.front().record);
      flight->completions.push_back(std::move(pending_.front().done));
      pending_.pop_front();
    }
    writer.finish();
    std::uint64_t index = 0;
    const int rv = catga_raft_apply(raft_, buf, size, flight.get(), &index);
    if (rv != 0) {
      Error e = rv == CATGA_RAFT_NOTLEADER ? not_leader_error()
                : rv == CATGA_RAFT_NOSPACE ? no_space_error()
                : rv == CATGA_RAFT_SHUTDOWN ? node_stopped()
                : failed_ ? stopped(failure_)
                          : Error(Code::unavailable, std::string("raft_apply: ") + catga_raft_strerror(rv));
      for (auto& c : flight->completions) c(e);
      continue;
    }
    if (no_space_) {
      no_space_ = false;
      internal::log().info("raft node {}: the Raft log accepts entries again", options_.node_id);
    }
    flight->index = index;
    {
      std::lock_guard lock(status_mu_);
      status_.counters.entries_appended++;
      status_.counters.records_appended += flight->completions.size();
    }
    in_flight_.emplace(index, std::move(flight));
  }
}

void RaftNode::issue_barriers() {
  if (barrier_waiting_.empty()) return;
  if (stopping_ || failed_ || last_state_ != CATGA_STATE_LEADER) {
    const Error e = stopping_ || failed_ ? stopped(failure_) : not_leader_error();
    auto waiters = std::move(barrier_waiting_);
    barrier_waiting_.clear();
    for (auto& w : waiters) w(e);
    return;
  }
  auto batch = std::make_unique<BarrierBatch>();
  batch->term = last_term_;
  batch->waiters = std::move(barrier_waiting_);
  barrier_waiting_.clear();
  // Raft's read index (dissertation §6.4): a leader that has committed an
  // entry of its own term knows every committed entry, so its commit index
  // now covers every write acknowledged before these reads arrived, and the
  // barrier committing in this term confirms it still leads. Handing out
  // that index instead of the barrier's own lets a follower's read proceed
  // as soon as it has applied it — the barrier's AppendEntries already tells
  // the follower that this index is committed — instead of waiting for the
  // leader's next message (a heartbeat) to learn that the barrier committed.
  catga_raft_info info{};
  catga_raft_get_info(raft_, &info);
  if (ready_ && ready_term_ == info.term && info.state == CATGA_STATE_LEADER) batch->read_index = info.commit_index;
  const int rv = catga_raft_barrier(raft_, batch.get());
  if (rv != 0) {
    const Error e = rv == CATGA_RAFT_NOTLEADER ? not_leader_error()
                    : rv == CATGA_RAFT_NOSPACE ? no_space_error()
                                               : Error(Code::unavailable, std::string("raft_barrier: ") +
                                                                              catga_raft_strerror(rv));
    for (auto& w : batch->waiters) w(e);
    return;
  }
  barriers_out_.push_back(std::move(batch));
}

void RaftNode::stop_on_loop() {
  if (raft_ == nullptr) return;
  stopping_ = true;
  {
    std::lock_guard lock(inbound_mu_);
    loop_gone_ = true;  // no more wakes: the async handle closes now
    stopped_because_ = failure_;
  }
  drain_inbound();
  pump();
  issue_barriers();
  if (change_busy_) {
    // The change callback (if any) still fires during close below.
  }
  catga_raft_close(raft_);  // in-flight requests complete synchronously here
  // Anything libraft did not complete (attached mode) fails now.
  auto flights = std::move(in_flight_);
  in_flight_.clear();
  for (auto& [index, f] : flights) {
    for (auto& c : f->completions) c(outcome_unknown_after_stop());
  }
  auto outs = std::move(barriers_out_);
  barriers_out_.clear();
  for (auto& b : outs) {
    for (auto& w : b->waiters) w(stopped(failure_));
  }
  auto snapshot_waiters = std::move(snapshot_waiters_);
  snapshot_waiters_.clear();
  for (auto& w : snapshot_waiters) w.done(stopped(failure_));
}

// ------------------------------------------------------------------ C callbacks

// A failed apply. In the fixture it returns non-zero: libraft stalls on
// purpose, never skipping an entry. A real node returns 0 and stops itself
// right after libraft's callback (on_after_io / on_wake), applying nothing
// more and taking no snapshot: libraft 0.22.1 frees an AppendEntries batch
// twice when the apply inside its receive path fails (legacyHandleUpdateEntries
// frees it, then recvCb frees it again because the step returned an error) —
// a double free whenever a follower's apply fails while entries arrive.
int RaftNode::apply_failed() const { return node_mode_ ? 0 : CATGA_RAFT_MALFORMED; }

int RaftNode::c_apply(void* ctx, std::uint64_t index, const void* data, std::size_t len) {
  auto* self = static_cast<RaftNode*>(ctx);
  if (self->failed_) return self->apply_failed();
  auto batch = decode_record_batch(std::string_view(static_cast<const char*>(data), len));
  if (!batch) {
    self->fail_node("log entry " + std::to_string(index) + ": " + batch.error().message());
    return self->apply_failed();  // never skip an entry
  }
  InFlight* flight = nullptr;
  if (auto it = self->in_flight_.find(index); it != self->in_flight_.end() && it->second->term == batch->header.term) {
    flight = it->second.get();
    flight->results.reserve(batch->records.size());
  }
  ApplyInfo info{index, batch->header.term, batch->header.leader_time_ns, 0,
                 self->starting_ || index <= self->replay_until_};
  try {
    for (std::size_t i = 0; i < batch->records.size(); ++i) {
      info.position = static_cast<std::uint32_t>(i);
      std::string out = self->machine_.apply(info, batch->records[i]);
      if (flight != nullptr) flight->results.push_back(std::move(out));
    }
  } catch (const std::exception& e) {
    self->fail_node("state machine threw while applying entry " + std::to_string(index) + ": " + e.what());
    return self->apply_failed();
  } catch (...) {
    self->fail_node("state machine threw while applying entry " + std::to_string(index));
    return self->apply_failed();
  }
  self->snapshots_.applied(len);
  self->sync_snapshot_threshold();
  return 0;
}

void RaftNode::c_apply_done(void* ctx, void* req, std::uint64_t index, int status) {
  auto* self = static_cast<RaftNode*>(ctx);
  auto* flight = static_cast<InFlight*>(req);
  std::unique_ptr<InFlight> owned;
  if (auto it = self->in_flight_.find(index); it != self->in_flight_.end() && it->second.get() == flight) {
    owned = std::move(it->second);
    self->in_flight_.erase(it);
  } else {
    // Completed synchronously inside catga_raft_apply (not yet in the map) —
    // not expected with libraft 0.22, handled for safety.
    for (auto it2 = self->in_flight_.begin(); it2 != self->in_flight_.end(); ++it2) {
      if (it2->second.get() == flight) {
        owned = std::move(it2->second);
        self->in_flight_.erase(it2);
        break;
      }
    }
    if (!owned) {
      internal::log().error("raft node {}: completion for unknown entry {}", self->options_.node_id, index);
      return;
    }
  }
  if (status == 0 && owned->results.size() == owned->completions.size()) {
    for (std::size_t i = 0; i < owned->completions.size(); ++i) {
      owned->completions[i](Applied{index, std::move(owned->results[i])});
    }
  } else {
    const Error e = status == 0 ? (self->failed_ ? self->outcome_unknown_after_stop()
                                                 : Error(Code::internal, "entry applied without results"))
                    : (status == CATGA_RAFT_LEADERSHIPLOST || status == CATGA_RAFT_SHUTDOWN)
                        ? self->outcome_unknown_after_stop()
                        : Error(Code::deadline_exceeded, std::string("outcome unknown: ") +
                                                             catga_raft_strerror(status));
    for (auto& c : owned->completions) c(e);
  }
  // More may be sent now; the loop's after-I/O hook pumps.
}

void RaftNode::c_barrier_done(void* ctx, void* req, std::uint64_t index, int status) {
  auto* self = static_cast<RaftNode*>(ctx);
  auto* raw = static_cast<BarrierBatch*>(req);
  std::unique_ptr<BarrierBatch> batch;
  for (auto it = self->barriers_out_.begin(); it != self->barriers_out_.end(); ++it) {
    if (it->get() == raw) {
      batch = std::move(*it);
      self->barriers_out_.erase(it);
      break;
    }
  }
  if (!batch) return;
  if (batch->readiness) {
    if (status != 0 && self->ready_barrier_term_ == batch->term) self->ready_barrier_term_ = 0;  // retry
    if (status == 0 && self->last_state_ == CATGA_STATE_LEADER && self->last_term_ == batch->term &&
        catga_raft_term(self->raft_) == batch->term) {
      self->ready_ = true;
      self->ready_term_ = batch->term;
      std::lock_guard lock(self->status_mu_);
      self->status_.ready = !self->failed_;
    }
    return;
  }
  if (status == 0) {
    const std::uint64_t read_index = batch->read_index != 0 ? std::min(batch->read_index, index) : index;
    for (auto& w : batch->waiters) w(std::uint64_t{read_index});
  } else {
    const Error e = self->stopping_ ? node_stopped()
                                    : Error(Code::unavailable, "leadership lost before the barrier committed");
    for (auto& w : batch->waiters) w(e);
  }
}

void RaftNode::c_wake(void* ctx) { static_cast<RaftNode*>(ctx)->on_wake(); }
void RaftNode::c_after_io(void* ctx) { static_cast<RaftNode*>(ctx)->on_after_io(); }

}  // namespace catga::internal
