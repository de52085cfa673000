// ReplicatedNode: the Replicator of a durable or clustered Application.
//
// It owns the Raft node (with a ReplicatedStateMachine applying records
// through the mediator) and the peer channel, and it is the client side of
// exactly-once: every command it sends carries this node's client session and
// a sequence number (session_client.hpp opens the session, numbers the
// commands and keeps the session alive), and is retried — on this node if it
// leads, else forwarded to the leader — until it gets a definite answer or
// its deadline passes. Because the state machine de-duplicates by (session,
// sequence), a retry after "leadership lost" or a broken connection applies
// at most once. The loop that carries each command to its answer is
// command_dispatcher.hpp's; this node tells it where an attempt goes. How
// each attempt's outcome is judged (retry, resend under a new session, final
// answer) is command_retrier.hpp's. A session that expired anyway (the node
// was paused, the cluster down) is reopened, and the command resent, when no
// earlier attempt of it can have applied. Retries never go to a local node
// that has stopped itself.
//
// Rolling upgrades (docs/operations.md): once caught up after start, the node
// announces through the log what it can apply (member_announcer.hpp,
// announcement_table.hpp), again whenever the table no longer holds its
// announcement; the leader withdraws the announcements of members no longer
// in the configuration, and refuses, before appending, a command or event
// that some announced member — or the leader itself — cannot handle. Before
// bootstrapping an empty data directory, the node asks its peers whether it
// already joined (bootstrap_guard.hpp).
#include "cluster/replicated_node.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "cluster/bootstrap_guard.hpp"
#include "cluster/command_dispatcher.hpp"
#include "cluster/command_retrier.hpp"
#include "cluster/backup.hpp"
#include "cluster/data_dir_marker.hpp"
#include "cluster/member_address.hpp"
#include "cluster/member_announcer.hpp"
#include "cluster/peer_channel.hpp"
#include "cluster/read_gate.hpp"
#include "cluster/read_runner.hpp"
#include "cluster/replicated_state_machine.hpp"
#include "cluster/session_client.hpp"
#include "cluster/raft_node.hpp"
#include "cluster/envelope.hpp"
#include "core/log.hpp"

namespace catga::internal {
namespace {

// The public headers' template helpers this file uses (catga::detail); the
// engine interface it implements is src/core/replicator.hpp (catga::internal).
using detail::Mediator;
using detail::UniqueFunction;
using Clock = std::chrono::steady_clock;

// The linearizable reads that the calling read thread's current burst started,
// confirmed together once the burst has run (ReplicatedNode::await_readable).
// Each burst its own: a burst preempted half-way holds up no other. A read
// thread serves one node's runner, so this belongs to that node.
thread_local std::vector<internal::ReadGate::Read> reads_this_burst;

constexpr auto kSweepEvery = std::chrono::milliseconds(20);
// Announcements and withdrawals: one at a time, at most one a second.
constexpr auto kAnnounceEvery = std::chrono::seconds(1);
constexpr auto kAnnounceTimeout = std::chrono::seconds(10);

// What a proposal to this node's Raft log produced, as the retry path
// judges it (command_retrier.hpp).
AttemptOutcome proposal_outcome(Result<internal::Applied> applied) {
  if (!applied) return {applied.error().code(), applied.error().message(), 0};
  return {Code::ok, std::move(applied->result), applied->index};
}

// The peer channel's edge: a forwarded command's answer as the leader sends
// it, and as the forwarding node receives it.
internal::peer::Outcome to_wire(AttemptOutcome outcome) {
  return {outcome.code, std::move(outcome.bytes), outcome.index};
}
AttemptOutcome from_wire(internal::peer::Outcome outcome) {
  return {outcome.code, std::move(outcome.bytes), outcome.index};
}

class ReplicatedNode final : public Replicator {
 public:
  explicit ReplicatedNode(Mediator& mediator) : machine_(mediator) {}

  ~ReplicatedNode() override {
    stopping_ = true;
    // Order: no more retries; stop Raft first (pending proposals, forwarded
    // ones included, complete with unavailable / deadline_exceeded while the
    // peer channel can still answer them), then the peer channel (its handler
    // may still call the stopped node, which answers at once), then fail what
    // is left.
    dispatcher_.stop();
    if (node_) node_->stop();
    if (peer_) peer_->stop();
    dispatcher_.fail_remaining();
    read_gate_.close(Error{Code::unavailable, "node stopped"});
    session_client_.fail_waiting(Error{Code::unavailable, "node stopped"});
  }

  Result<void> start(const ClusterOptions& options) {
    if (auto valid = options.validate(); !valid) return valid;
    for (const auto& m : options.members) {
      peer_addresses_[m.id] = internal::peer_channel_address(m);
    }
    const Member& self = *std::find_if(options.members.begin(), options.members.end(),
                                       [&](const Member& m) { return m.id == options.node_id; });
    self_id_ = options.node_id;
    election_timeout_ = options.election_timeout;
    tracer_ = options.tracer;
    machine_.set_tracer(tracer_.get());
    announcer_ = std::make_unique<internal::MemberAnnouncer>(machine_, self_id_);
    if (auto guarded = guard_bootstrap(options); !guarded) return guarded;
    internal::RaftNodeCallbacks callbacks;
    callbacks.on_role_changed = [this](NodeRole role, std::uint64_t) {
      leader_ = role == NodeRole::leader;
      stopped_itself_ = role == NodeRole::unavailable;  // only once the node stopped itself
      machine_.set_leader(leader_);
    };
    callbacks.on_leader_changed = [this](std::uint64_t id, const std::string&) { leader_id_ = id; };
    callbacks.on_applied = [this](std::uint64_t applied) { read_gate_.advance(applied); };
    auto node = RaftNode::start(options, machine_, std::move(callbacks),
                                options.join ? internal::JoinMode::join_existing : internal::JoinMode::bootstrap_if_empty);
    if (!node) return node.error();
    node_ = std::move(*node);
    announcer_->set_data_dir(internal::sentinel_identity(options.data_dir));
    read_gate_.advance(node_->applied_index());
    // The peer channel starts after the node: forwarded work needs it. Every
    // member that can be dialled listens, a lone one too: it may be grown
    // (add_member) and then be forwarded to, or forward itself. Only a node
    // on Raft port 0 (a single durable node) listens nowhere, but it still
    // uses the channel's timers (retries, deadlines).
    single_ = options.members.size() == 1 && self.address.ends_with(":0");
    PeerChannel::Handler handler;
    handler.forward = [this](std::vector<std::string> records, PeerChannel::RecordDone done) {
      auto shared = std::make_shared<PeerChannel::RecordDone>(std::move(done));
      std::vector<RaftNode::Proposal> proposals;
      proposals.reserve(records.size());
      for (std::size_t i = 0; i < records.size(); ++i) {
        // Only well-formed envelopes reach the log.
        auto envelope = internal::decode_envelope(records[i]);
        if (!envelope) {
          (*shared)(i, {Code::invalid_argument, "forwarded record refused: " + envelope.error().message(), 0});
          continue;
        }
        if (auto refused = refuse_before_append(*envelope)) {
          (*shared)(i, {refused->code(), std::string(refused->message()), 0});
          continue;
        }
        proposals.push_back({std::move(records[i]), [this, shared, i](Result<internal::Applied> r) {
                               auto outcome = proposal_outcome(std::move(r));
                               // Stopped itself: no leader for its peers, nothing appended; they retry elsewhere.
                               if (stopped_itself_ && outcome.code == Code::failed_precondition) {
                                 outcome.code = Code::unavailable;
                               }
                               (*shared)(i, to_wire(std::move(outcome)));
                             }});
      }
      if (!proposals.empty()) node_->propose(std::move(proposals));
    };
    handler.read_index = [this](PeerChannel::IndexDone done) { node_->barrier(std::move(done)); };
    handler.member_state = [this](std::uint64_t id) { return announcer_->member_state(id, node_->status()); };
    handler.build = [this] {
      return internal::peer::BuildInfo{.node_id = self_id_, .min_format = machine_.formats().min,
                                       .max_format = machine_.formats().max};
    };
    auto peer = PeerChannel::start(
        internal::member_channel_options(options, single_ ? std::string() : peer_addresses_[self.id]),
        std::move(handler));
    if (!peer) return peer.error();
    peer_ = std::move(*peer);
    schedule_sweep();
    return {};
  }

  // ---- Replicator (any thread) ----

  void submit(MessageKind kind, std::string_view wire_name, std::string payload, const CommandOptions& options,
              Done done) override {
    session_client_.submit(kind, wire_name, std::move(payload), options.idempotency_key,
                           Clock::now() + options.timeout, options.trace_parent, std::move(done));
  }

  // A node that stopped itself may hold a partly applied entry, and its state
  // falls further behind with every commit it no longer applies: no reads,
  // `local` ones included.
  std::optional<Error> local_read_refusal() const override { return stopped_error(); }

  void await_readable(const QueryOptions& options, UniqueFunction<void(Result<void>)> done,
                      QueryRunner runner) override {
    if (auto stopped = stopped_error()) return done(std::move(*stopped));
    // A blocking caller's read only wakes it (it runs its query itself): on
    // whichever thread the read becomes servable, without the read threads.
    internal::ReadGate::Read read{Clock::now() + options.timeout, std::move(done), runner == QueryRunner::caller};
    switch (options.consistency) {
      case Consistency::local:
        return read.done({});
      case Consistency::read_your_writes:
        // It waits for the index it names, nothing more; a follower that has
        // to wait also asks the leader to tell it the commit index now.
        if (read_gate_.wait(options.min_index, std::move(read))) learn_commit(options.min_index);
        return;
      case Consistency::linearizable:
        break;
    }
    // A blocking caller on a read thread inside a burst waits right here: its
    // read is asked for at once (held back to the burst's end, it would wait
    // for itself).
    if (read.wakes_caller || !read_runner_.in_burst()) return confirm(std::move(read));
    // Started by a read thread inside a burst (a caller sending its next read
    // from the previous one's completion): asked for once the burst has run,
    // with every other read the burst started — one barrier or one read index
    // for them all, and their queries woken together as one burst again, as
    // when they ran on the loop thread. Asked one by one, they trickled into
    // the loop while the burst ran and split into groups, each with a barrier
    // (a log entry) of its own. Asking later than the read arrived is safe;
    // earlier never happens.
    if (reads_this_burst.empty()) {
      internal::ReadRunner::Task ask = [this] { confirm(std::exchange(reads_this_burst, {})); };
      read_runner_.at_burst_end(ask);  // on this thread, once its burst has run
    }
    reads_this_burst.push_back(std::move(read));
  }

  // Has the leader confirm an index for linearizable reads that all arrived
  // before this call — a barrier when this node leads (one barrier serves
  // every read queued before it is issued), the leader's read index
  // otherwise — and has the reads wait until this node applied it. `Reads`:
  // one ReadGate::Read, or a vector of them.
  template <class Reads>
  void confirm(Reads reads) {
    auto then_wait = [this, reads = std::move(reads)](Result<std::uint64_t> confirmed) mutable {
      if (!confirmed) {
        for (auto& r : as_span(reads)) r.done(confirmed.error());
        return;
      }
      read_gate_.wait(*confirmed, std::move(reads), /*engine_thread=*/true);
    };
    if (leader_ || single_) return node_->barrier(std::move(then_wait));
    auto leader = leader_peer_address();
    if (leader.empty()) return then_wait(Error{Code::unavailable, "no leader known for a linearizable read"});
    peer_->read_index(leader, std::move(then_wait));
  }
  static std::span<internal::ReadGate::Read> as_span(internal::ReadGate::Read& read) { return {&read, 1}; }
  static std::span<internal::ReadGate::Read> as_span(std::vector<internal::ReadGate::Read>& reads) { return reads; }

  // A read_your_writes read waits on a follower for `index`, the index of a
  // write whose receipt came after it applied on the leader, so committed.
  // The follower usually holds that entry already, but learns that it
  // committed only from the leader's next message: with nothing else being
  // written, the next heartbeat (one to two heartbeat intervals). Asking the
  // leader for its read index makes it issue a barrier, whose AppendEntries
  // carries its commit index — at least `index` — to the followers at once;
  // the read itself still waits only for `index` on the gate, not for the
  // answer. One question at a time per node: reads that come while one is
  // out are covered by its answer when their index is at most the index it
  // answers, else the answer is followed by one more question for the
  // highest of them. Nothing is asked on the leader (it commits without
  // waiting for anyone's heartbeat), for an index this node already knows is
  // committed (it applies it without help), or when no leader is known (the
  // read waits on the gate, for the next leader's messages, until its
  // deadline). When commands flow, their AppendEntries would carry the
  // commit index soon anyway; a question then costs the leader one barrier
  // entry per round trip at most, appended with the commands' entries.
  void learn_commit(std::uint64_t index) {
    if (leader_ || single_) return;
    {
      std::lock_guard lock(learn_mu_);
      if (learning_) {
        learn_wanted_ = std::max(learn_wanted_, index);
        return;
      }
      learning_ = true;
    }
    ask_commit(index);
  }

  // learn_commit's question, with learning_ set: asks the leader, or clears
  // learning_ when nothing needs asking.
  void ask_commit(std::uint64_t index) {
    for (;;) {
      std::string leader;
      if (!stopping_ && node_->status().commit_index < index) leader = leader_peer_address();
      if (!leader.empty()) {
        return peer_->read_index(leader, [this](Result<std::uint64_t> answered) {
          std::uint64_t next = 0;
          {
            std::lock_guard lock(learn_mu_);
            // A failed question is not repeated: its reads wait on the gate.
            if (answered && learn_wanted_ > *answered) next = learn_wanted_;
            learn_wanted_ = 0;
            learning_ = next != 0;
          }
          if (next != 0) ask_commit(next);
        });
      }
      // Nothing asked: done, unless a read beyond `index` came meanwhile.
      std::lock_guard lock(learn_mu_);
      if (learn_wanted_ <= index) {
        learn_wanted_ = 0;
        learning_ = false;
        return;
      }
      index = std::exchange(learn_wanted_, 0);
    }
  }

  NodeStatus status() const override {
    NodeStatus s = node_->status();
    s.counters.commands_forwarded = dispatcher_.forwarded();
    s.counters.commands_retried = dispatcher_.retried();
    machine_.describe(s);
    return s;
  }

  // A member with a peer address is added only once the node listening
  // there said it is that member and reads "RAFT/PEER" (joiner_refusal): the
  // question runs on the peer channel's thread, never the loop thread.
  void add_member(Member member, VoidDone done) override {
    // A malformed address is refused as such, before anything is asked.
    if (auto valid = internal::check_member_addresses("member " + std::to_string(member.id), member); !valid) {
      return done(valid.error());
    }
    if (auto refused = internal::peer_address_refusal(member, status())) return done(std::move(*refused));
    if (member.peer_address.empty() || !leader_) return node_->add_member(std::move(member), std::move(done));
    ask_joiner(std::move(member), std::move(done), kJoinerQuestions);
  }
  // A question that failed (no connection, no handshake, no answer within the
  // peer channel's bound of one election timeout) is asked again, an election
  // timeout later, up to kJoinerQuestions times in all: on a loaded host a
  // live joiner can miss one bound. The last answer decides.
  static constexpr int kJoinerQuestions = 3;
  void ask_joiner(Member member, VoidDone done, int questions_left) {
    const std::string address = member.peer_address;
    peer_->ask_build(address, [this, member = std::move(member), done = std::move(done), questions_left](
                                  Result<internal::peer::BuildInfo> answer) mutable {
      if (!answer && questions_left > 1) {
        return peer_->after(election_timeout_, [this, member = std::move(member), done = std::move(done),
                                                questions_left]() mutable {
          ask_joiner(std::move(member), std::move(done), questions_left - 1);
        });
      }
      if (auto refused = internal::joiner_refusal(member, answer)) return done(std::move(*refused));
      node_->add_member(std::move(member), std::move(done));
    });
  }

  void assign_role(std::uint64_t id, MemberRole role, VoidDone done) override {
    node_->assign_role(id, role, std::move(done));
  }
  void remove_member(std::uint64_t id, VoidDone done) override { node_->remove_member(id, std::move(done)); }
  void transfer_leadership(std::uint64_t to, VoidDone done) override { node_->transfer_leadership(to, std::move(done)); }

  void take_snapshot(UniqueFunction<void(Result<std::uint64_t>)> done, std::chrono::milliseconds wait) override {
    node_->take_snapshot(std::move(done), wait);
  }

  void backup(UniqueFunction<void(Result<std::string>)> done, std::chrono::milliseconds wait) override {
    internal::take_backup(*node_, std::move(done), wait);
  }

  void pause_for_test(std::chrono::milliseconds duration) override {
    node_->post([duration] { std::this_thread::sleep_for(duration); });
  }

 private:
  // The retry/forward loop's view of this node (command_dispatcher.hpp).
  internal::CommandDispatcher::Node dispatcher_node() {
    internal::CommandDispatcher::Node n;
    n.route = [this] {
      using Route = internal::CommandDispatcher::Route;
      // A node that stopped itself answers at once (its failure), not its peers.
      if (stopped_itself_) {
        if (auto stopped = stopped_error()) return Route::stopped_with(std::move(*stopped));
        return Route::to_local();
      }
      if (leader_ || single_) return Route::to_local();
      auto leader = leader_peer_address();
      return leader.empty() ? Route::nowhere() : Route::to_leader(std::move(leader));
    };
    n.propose_local = [this](std::string record, internal::CommandDispatcher::OutcomeDone done) {
      if (!stopped_itself_) {
        if (auto envelope = internal::decode_envelope(record); envelope) {
          if (auto refused = refuse_before_append(*envelope)) {
            return done({refused->code(), std::string(refused->message()), 0});
          }
        }
      }
      node_->propose(std::move(record), [done = std::move(done)](Result<internal::Applied> r) mutable {
        done(proposal_outcome(std::move(r)));
      });
    };
    n.forward = [this](const std::string& address, std::string record, internal::CommandDispatcher::OutcomeDone done) {
      peer_->forward(address, std::move(record),
                     [done = std::move(done)](internal::peer::Outcome o) mutable { done(from_wire(std::move(o))); });
    };
    n.after = [this](std::chrono::milliseconds delay, UniqueFunction<void()> f) { peer_->after(delay, std::move(f)); };
    n.is_session_unknown = [](std::string_view bytes) { return ReplicatedStateMachine::is_session_unknown(bytes); };
    n.completed = [this](std::uint64_t session, std::uint64_t sequence) {
      session_client_.completed(session, sequence);
    };
    n.drop = [this](std::uint64_t session) { session_client_.drop(session); };
    n.resend = [this](std::string record, Clock::time_point deadline, Done done) {
      auto envelope = internal::decode_envelope(record);
      if (!envelope) {  // cannot happen: this node encoded it
        return done(Error{Code::internal, "resend: " + envelope.error().message()}, 0);
      }
      session_client_.submit(envelope->kind, envelope->wire_name, std::string(envelope->payload), envelope->key,
                             deadline, envelope->trace, std::move(done));
    };
    return n;
  }

  void schedule_sweep() {
    peer_->after(kSweepEvery, [this] {
      if (stopping_) return;
      const auto now = Clock::now();
      dispatcher_.expire_due(now);
      session_client_.keep_alive(now);
      maintain_announcements(now);
      read_gate_.expire(now);
      schedule_sweep();
    });
  }

  // An empty data directory started without join: the peers must not know
  // this member (bootstrap_guard.hpp). A lone member has nobody to ask.
  static Result<void> guard_bootstrap(const ClusterOptions& options) {
    if (options.join) return {};
    auto decision = internal::decide_start(options, false);
    if (!decision || !decision->bootstrap) return {};  // RaftNode::start reports a refusal
    std::map<std::uint64_t, std::string> peers;
    for (const auto& m : options.members) {
      if (m.id != options.node_id) {
        peers[m.id] = internal::peer_channel_address(m);
      }
    }
    const auto self = std::find_if(options.members.begin(), options.members.end(),
                                   [&](const Member& m) { return m.id == options.node_id; });
    return internal::run_bootstrap_guard(options, internal::peer_channel_address(*self), peers,
                                         internal::BootstrapBounds::for_election_timeout(options.election_timeout));
  }

  // The refusal of a record this node (leading) must not append: a command or
  // event some member cannot handle, an announcement of a non-member.
  std::optional<Error> refuse_before_append(const internal::EnvelopeView& e) const {
    if (e.wire_name == internal::kOpenSessionRecord || e.wire_name == internal::kKeepAliveRecord ||
        e.wire_name == internal::kWithdrawRecord || e.wire_name == internal::kFormatRecord) {
      return std::nullopt;
    }
    if (e.wire_name == internal::kAnnounceRecord) {
      auto a = internal::decode_announcement(e.payload);
      if (!a) return Error{Code::invalid_argument, a.error().message()};
      const auto members = node_->status().members;
      const bool member = std::any_of(members.begin(), members.end(),
                                      [&](const MemberStatus& m) { return m.member.id == a->node_id; });
      if (!member) {
        return Error{Code::failed_precondition,
                     "member " + std::to_string(a->node_id) + " is not in the configuration: its announcement is refused"};
      }
      return std::nullopt;
    }
    return machine_.admission(e.wire_name, e.kind, self_id_);
  }

  // Sweep: appends what the announcer says is due (member_announcer.hpp), one
  // record at a time, at most one a second.
  void maintain_announcements(Clock::time_point now) {
    if (announce_out_ || now < next_announce_) return;
    std::string record = announcer_->next_record(node_->status());
    if (record.empty()) return;
    announce_out_ = true;
    next_announce_ = now + kAnnounceEvery;
    dispatcher_.dispatch(std::move(record), now + kAnnounceTimeout, 0, 0, [this](Result<std::string> r, std::uint64_t) {
      if (!r) internal::log().debug("catga: announcement not applied yet ({}); will retry", r.error().message());
      announce_out_ = false;
    });
  }

  // "node stopped: <failure>" (failed_precondition: not retryable here) once
  // this node stopped itself; nothing otherwise.
  std::optional<Error> stopped_error() const {
    if (!stopped_itself_) return std::nullopt;
    std::string failure = node_->status().failure;
    if (failure.empty()) return std::nullopt;
    return internal::node_stopped_itself(failure);
  }

  std::string leader_peer_address() const {
    const std::uint64_t id = leader_id_;
    if (id == 0) return {};
    if (auto it = peer_addresses_.find(id); it != peer_addresses_.end()) return it->second;
    // A member added after start: the peer address it was added with (the
    // configuration carries it), else the Raft host and port + 1.
    auto status = node_->status();
    for (const MemberStatus& m : status.members) {
      if (m.member.id != id) continue;
      return internal::peer_channel_address(m.member);
    }
    return status.leader_id == id ? internal::default_peer_address(status.leader_address) : std::string();
  }

  ReplicatedStateMachine machine_;
  std::shared_ptr<Tracer> tracer_;  // ClusterOptions::tracer; fixed after start
  std::chrono::milliseconds election_timeout_{0};  // ClusterOptions::election_timeout; fixed after start
  std::unique_ptr<PeerChannel> peer_;
  std::unique_ptr<RaftNode> node_;
  std::map<std::uint64_t, std::string> peer_addresses_;  // fixed after start
  bool single_ = false;  // a lone member nobody can dial: no peers, everything local
  std::atomic<bool> leader_{false};
  std::atomic<bool> stopped_itself_{false};
  std::atomic<std::uint64_t> leader_id_{0};
  std::atomic<bool> stopping_{false};

  // Announcements (member_announcer.hpp); the sweep's, but announce_out_
  // is cleared by the record's completion.
  std::uint64_t self_id_ = 0;
  std::unique_ptr<internal::MemberAnnouncer> announcer_;
  std::atomic<bool> announce_out_{false};
  Clock::time_point next_announce_{};

  // This node's client session: its records go out through dispatch(). A
  // traced command sent on a follower gets a span for its forward hop; the
  // leader's apply span becomes that span's child.
  SessionClient session_client_{
      [this](std::string record, Clock::time_point deadline, std::uint64_t session, std::uint64_t sequence, Done done,
             std::unique_ptr<Span> span) {
        dispatcher_.dispatch(std::move(record), deadline, session, sequence, std::move(done), std::move(span));
      },
      [this](std::string_view wire_name, const TraceContext& trace) {
        SessionClient::Traced traced;
        if (!tracer_) return traced;
        if (!leader_ && !single_) traced.span = tracer_->start(SpanStage::forward, wire_name, trace);
        traced.carried = traced.span ? traced.span->context() : trace;
        return traced;
      }};

  // Commands awaiting a definite answer: sent until one comes or their
  // deadline passes (command_dispatcher.hpp).
  internal::CommandDispatcher dispatcher_{dispatcher_node()};

  // learn_commit's question to the leader (under learn_mu_): one out at a
  // time, and the highest index that reads asked for while it was out.
  std::mutex learn_mu_;
  bool learning_ = false;
  std::uint64_t learn_wanted_ = 0;

  // Reads waiting for an applied index (any thread; woken by apply), and the
  // threads their queries run on once woken (read_runner.hpp). Declared last:
  // destroyed first, the runner finishing the reads it still holds while the
  // rest of the node exists.
  internal::ReadRunner read_runner_;
  internal::ReadGate read_gate_{[this](detail::UniqueFunction<void()> read) { read_runner_.post(std::move(read)); }};
};

}  // namespace

Result<std::unique_ptr<Replicator>> make_replicated_node(BuildPlan& plan) {
  ClusterOptions options;
  switch (plan.placement) {
    case Placement::cluster:
      options = plan.cluster;
      break;
    case Placement::default_durable:
    case Placement::data_dir:
      // A single durable node: a 1-member Raft log. Nobody connects to it, so
      // its port is an ephemeral loopback one.
      options.node_id = 1;
      options.members = {Member{1, "127.0.0.1:0", MemberRole::voter, {}}};
      options.data_dir = plan.placement == Placement::data_dir ? plan.data_dir : std::filesystem::path("catga-data");
      break;
    case Placement::in_memory:
      return Error{Code::internal, "in-memory applications have no replicated node"};
  }
  auto node = std::make_unique<ReplicatedNode>(*plan.mediator);
  if (auto started = node->start(options); !started) return started.error();
  return std::unique_ptr<Replicator>(std::move(node));
}

}  // namespace catga::internal
