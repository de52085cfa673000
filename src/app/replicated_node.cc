// ReplicatedNode: the bridge between the mediator and the Raft node.
//
// Outbound (any thread): a command or event becomes an envelope record,
// proposed to the Raft node (which batches records into entries).
// Inbound (loop thread): every committed record is decoded and applied to the
// state through the mediator, on every node, in log order; the encoded Result
// goes back to the proposer on the leader. Events raised while applying are
// delivered right after the command applied.
#include "app/replicated_node.hpp"

#include <spdlog/spdlog.h>

#include <deque>
#include <map>
#include <mutex>

#include "app/session_table.hpp"
#include "cluster/raft_node.hpp"
#include "core/envelope.hpp"

namespace catga::detail {
namespace {

using internal::ApplyInfo;
using internal::RaftNode;

// Records the library itself writes to the log.
constexpr std::string_view kOpenSession = "catga.session.open.v1";
constexpr unsigned kSnapshotFormat = 1;

// The sequences this client has in flight: floor() is the lowest one still
// awaited, which lets the state machine forget older answers.
class SequenceWindow {
 public:
  std::uint64_t next() {
    done_.push_back(false);
    return base_ + done_.size() - 1;
  }
  void complete(std::uint64_t sequence) {
    if (sequence < base_ || sequence - base_ >= done_.size()) return;
    done_[sequence - base_] = true;
    while (!done_.empty() && done_.front()) {
      done_.pop_front();
      ++base_;
    }
  }
  std::uint64_t floor() const { return base_; }

 private:
  std::uint64_t base_ = 1;
  std::deque<bool> done_;
};

class ReplicatedNode final : public Replicator, public internal::RecordStateMachine {
 public:
  explicit ReplicatedNode(Mediator& mediator) : mediator_(mediator) {}

  ~ReplicatedNode() override {
    // Stops the loop thread; pending proposals complete with `unavailable`.
    node_.reset();
    for (auto& [index, waiter] : waiters_) waiter(Error{Code::unavailable, "node stopped"});
  }

  Result<void> start(const ClusterOptions& options) {
    internal::RaftNodeCallbacks callbacks;
    callbacks.on_role_changed = [this](NodeRole role, std::uint64_t) { leader_ = role == NodeRole::leader; };
    auto node = RaftNode::start(options, *this, std::move(callbacks));
    if (!node) return node.error();
    node_ = std::move(*node);
    return {};
  }

  // ---- Replicator (any thread) ----

  void submit(MessageKind kind, std::string_view wire_name, std::string payload, const CommandOptions& options,
              Done done) override {
    std::unique_lock lock(session_mu_);
    if (session_ == 0) {
      // The first command of this client opens its session through the log;
      // commands sent meanwhile wait for it.
      waiting_.push_back(Deferred{kind, std::string(wire_name), std::move(payload), options, std::move(done)});
      if (!opening_) {
        opening_ = true;
        lock.unlock();
        open_session();
      }
      return;
    }
    const std::uint64_t session = session_;
    const std::uint64_t sequence = window_.next();
    const std::uint64_t floor = window_.floor();
    lock.unlock();
    std::string record = internal::encode_envelope(
        {kind, wire_name, payload, session, sequence, floor, options.idempotency_key});
    node_->propose(std::move(record), [this, session, sequence, done = std::move(done)](Result<internal::Applied> applied) mutable {
      {
        std::lock_guard guard(session_mu_);
        if (session == session_) window_.complete(sequence);
        if (applied && session == session_ && session_expired(applied->result)) session_ = 0;  // reopen next time
      }
      if (!applied) return done(std::move(applied).error(), 0);
      done(std::move(applied->result), applied->index);
    });
  }

  void await_readable(const QueryOptions& options, UniqueFunction<void(Result<void>)> done) override {
    switch (options.consistency) {
      case Consistency::local:
        done({});
        return;
      case Consistency::read_your_writes:
        node_->post([this, index = options.min_index, done = std::move(done)]() mutable { wait_applied(index, std::move(done)); });
        return;
      case Consistency::linearizable:
        node_->barrier([this, done = std::move(done)](Result<std::uint64_t> confirmed) mutable {
          if (!confirmed) return done(std::move(confirmed).error());
          wait_applied(*confirmed, std::move(done));
        });
        return;
    }
  }

  NodeStatus status() const override { return node_->status(); }

  // ---- RecordStateMachine (loop thread) ----

  std::string apply(const ApplyInfo& info, std::string_view record) override {
    if (info.index != entry_index_) {
      entry_index_ = info.index;
      // Runs after libraft finished applying this entry (all of its records).
      node_->post([this, index = info.index] { entry_applied(index); });
    }
    std::string out;
    auto envelope = internal::decode_envelope(record);
    if (!envelope) {
      spdlog::error("catga: undecodable record at index {}: {}", info.index, envelope.error().message());
      encode_error_result(out, Error{Code::internal, "undecodable record: " + envelope.error().message()});
      return out;
    }
    const std::int64_t now_ms = info.leader_time_ns / 1'000'000;
    if (envelope->wire_name == kOpenSession) {
      encode_result(out, Result<std::uint64_t>(sessions_.open(info.index, info.position, now_ms)));
      return out;
    }
    auto verdict = sessions_.check(envelope->session, envelope->sequence, envelope->floor, envelope->key, now_ms);
    if (verdict.action == internal::SessionTable::Verdict::Action::answer) return std::move(verdict.answer);
    apply_new(info, *envelope, out);
    sessions_.record(envelope->session, envelope->sequence, envelope->key, out, now_ms);
    return out;
  }

  std::string snapshot() override {
    std::string state;
    {
      std::shared_lock lock(mediator_.state().mutex());
      state = mediator_.state().snapshot();
    }
    std::string sessions = sessions_.encode();
    std::string out;
    StringSink sink{&out};
    msgpack::packer<StringSink> p(sink);
    p.pack_array(3);
    p.pack(kSnapshotFormat);
    p.pack_bin(static_cast<std::uint32_t>(state.size()));
    p.pack_bin_body(state.data(), static_cast<std::uint32_t>(state.size()));
    p.pack_bin(static_cast<std::uint32_t>(sessions.size()));
    p.pack_bin_body(sessions.data(), static_cast<std::uint32_t>(sessions.size()));
    return out;
  }

  Result<void> restore(std::string_view bytes) override {
    msgpack::object_handle handle;
    DecodeLimits limits{.max_bytes = SIZE_MAX, .max_array = 8, .max_map = 0, .max_str = 0, .max_bin = SIZE_MAX, .max_depth = 2};
    if (auto r = unpack_one(bytes, limits, handle); !r) return Error{Code::data_loss, "snapshot: " + r.error().message()};
    const msgpack::object& o = handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
        o.via.array.ptr[1].type != msgpack::type::BIN || o.via.array.ptr[2].type != msgpack::type::BIN) {
      return Error{Code::data_loss, "snapshot: not a catga snapshot"};
    }
    if (o.via.array.ptr[0].via.u64 != kSnapshotFormat) {
      return Error{Code::data_loss, "snapshot: format " + std::to_string(o.via.array.ptr[0].via.u64) + " is not readable by this build"};
    }
    const auto& state = o.via.array.ptr[1].via.bin;
    const auto& sessions = o.via.array.ptr[2].via.bin;
    internal::SessionTable table;
    if (auto r = table.decode(std::string_view(sessions.ptr, sessions.size)); !r) return r;
    std::unique_lock lock(mediator_.state().mutex());
    if (auto r = mediator_.state().restore(std::string_view(state.ptr, state.size)); !r) return r;
    sessions_ = std::move(table);
    return {};
  }

 private:
  struct Deferred {
    MessageKind kind;
    std::string wire_name;
    std::string payload;
    CommandOptions options;
    Done done;
  };

  static bool session_expired(std::string_view encoded) {
    msgpack::object_handle handle;
    Code code{};
    const msgpack::object* body = nullptr;
    if (!decode_result_head(encoded, handle, code, body) || code != Code::deadline_exceeded) return false;
    return body->type == msgpack::type::STR &&
           std::string_view(body->via.str.ptr, body->via.str.size).starts_with("client session expired");
  }

  void open_session() {
    node_->propose(internal::encode_envelope({MessageKind::command, kOpenSession, {}, 0, 0, 0, {}}),
                   [this](Result<internal::Applied> applied) {
                     Result<std::uint64_t> opened = applied ? decode_result<std::uint64_t>(applied->result)
                                                            : Result<std::uint64_t>(std::move(applied).error());
                     std::vector<Deferred> waiting;
                     {
                       std::lock_guard lock(session_mu_);
                       opening_ = false;
                       if (opened) {
                         session_ = *opened;
                         window_ = SequenceWindow();
                       }
                       waiting.swap(waiting_);
                     }
                     for (auto& d : waiting) {
                       if (!opened) {
                         d.done(opened.error(), 0);
                       } else {
                         submit(d.kind, d.wire_name, std::move(d.payload), d.options, std::move(d.done));
                       }
                     }
                   });
  }

  // Runs a command or delivers an event that the session table has not seen.
  void apply_new(const ApplyInfo& info, const internal::EnvelopeView& envelope, std::string& out) {
    Slot* slot = mediator_.find(envelope.wire_name);
    if (slot == nullptr || slot->kind() != envelope.kind) {
      encode_error_result(out, Mediator::no_handler(envelope.wire_name, envelope.kind));
      return;
    }
    const Timestamp time{std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(info.leader_time_ns))};
    const EventInfo event_info{info.index, info.term, time, leader_, info.index <= replay_until_};
    if (envelope.kind == MessageKind::event) {
      static_cast<EventSlotBase*>(slot)->deliver_encoded(mediator_, envelope.payload, event_info);
      encode_result(out, Result<void>());
      return;
    }
    StateBase& state = mediator_.state();
    CommandContext ctx(info.index, info.term, time, &state.id_counter());
    bool succeeded;
    {
      std::unique_lock lock(state.mutex());
      succeeded = static_cast<CommandSlotBase*>(slot)->apply_encoded_locked(state, envelope.payload, ctx, out);
    }
    if (succeeded) mediator_.deliver_pending(ctx, event_info);
  }

  void entry_applied(std::uint64_t index) {
    if (index > applied_) applied_ = index;
    while (!waiters_.empty() && waiters_.begin()->first <= applied_) {
      auto waiter = std::move(waiters_.begin()->second);
      waiters_.erase(waiters_.begin());
      waiter({});
    }
  }

  // Loop thread.
  void wait_applied(std::uint64_t index, UniqueFunction<void(Result<void>)> done) {
    std::uint64_t applied = std::max(applied_, node_->status().applied_index);
    if (index <= applied) return done({});
    waiters_.emplace(index, std::move(done));
  }

  Mediator& mediator_;
  std::unique_ptr<RaftNode> node_;
  // This node's client session (any thread, under session_mu_).
  std::mutex session_mu_;
  std::uint64_t session_ = 0;
  bool opening_ = false;
  SequenceWindow window_;
  std::vector<Deferred> waiting_;
  // Loop thread only.
  std::atomic<bool> leader_{false};
  std::uint64_t entry_index_ = 0;
  std::uint64_t applied_ = 0;
  std::uint64_t replay_until_ = 0;
  internal::SessionTable sessions_;
  std::multimap<std::uint64_t, UniqueFunction<void(Result<void>)>> waiters_;
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
      // A single durable node: a 1-member Raft log. Nobody connects to its
      // port, so an ephemeral loopback port is enough.
      options.node_id = 1;
      options.members = {Member{1, "127.0.0.1:0", MemberRole::voter}};
      options.data_dir = plan.placement == Placement::data_dir ? plan.data_dir : std::filesystem::path("catga-data");
      break;
    case Placement::in_memory:
      return Error{Code::internal, "in-memory applications have no replicated node"};
  }
  auto node = std::make_unique<ReplicatedNode>(*plan.mediator);
  if (auto started = node->start(options); !started) return started.error();
  return std::unique_ptr<Replicator>(std::move(node));
}

}  // namespace catga::detail
