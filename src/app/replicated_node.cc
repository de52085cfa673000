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

#include <map>
#include <mutex>

#include "cluster/raft_node.hpp"
#include "core/envelope.hpp"

namespace catga::detail {
namespace {

using internal::ApplyInfo;
using internal::RaftNode;

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

  void submit(MessageKind kind, std::string_view wire_name, std::string payload, const CommandOptions&,
              Done done) override {
    std::string record = internal::encode_envelope({kind, wire_name, payload, 0, 0});
    node_->propose(std::move(record), [done = std::move(done)](Result<internal::Applied> applied) mutable {
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
    Slot* slot = mediator_.find(envelope->wire_name);
    if (slot == nullptr || slot->kind() != envelope->kind) {
      encode_error_result(out, Mediator::no_handler(envelope->wire_name, envelope->kind));
      return out;
    }
    const Timestamp time{std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(info.leader_time_ns))};
    const EventInfo event_info{info.index, info.term, time, leader_, info.index <= replay_until_};
    if (envelope->kind == MessageKind::event) {
      static_cast<EventSlotBase*>(slot)->deliver_encoded(mediator_, envelope->payload, event_info);
      encode_result(out, Result<void>());
      return out;
    }
    StateBase& state = mediator_.state();
    CommandContext ctx(info.index, info.term, time, &state.id_counter());
    bool succeeded;
    {
      std::unique_lock lock(state.mutex());
      succeeded = static_cast<CommandSlotBase*>(slot)->apply_encoded_locked(state, envelope->payload, ctx, out);
    }
    if (succeeded) mediator_.deliver_pending(ctx, event_info);
    return out;
  }

  std::string snapshot() override {
    std::shared_lock lock(mediator_.state().mutex());
    return mediator_.state().snapshot();
  }

  Result<void> restore(std::string_view bytes) override {
    std::unique_lock lock(mediator_.state().mutex());
    return mediator_.state().restore(bytes);
  }

 private:
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
  // Loop thread only.
  std::atomic<bool> leader_{false};
  std::uint64_t entry_index_ = 0;
  std::uint64_t applied_ = 0;
  std::uint64_t replay_until_ = 0;
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
