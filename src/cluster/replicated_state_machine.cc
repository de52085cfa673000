#include "cluster/replicated_state_machine.hpp"

#include "cluster/flat_reader.hpp"
#include "core/context_access.hpp"
#include "core/log.hpp"

#include <mutex>
#include <shared_mutex>
#include <stdexcept>

namespace catga::internal {
namespace {
// 1: [1, state, sessions]; 2: [2, state, sessions, announcements].
constexpr unsigned kSnapshotFormat = 2;

// Success, or the error, of an encoded result (for the apply span).
Result<void> outcome_of_encoded(std::string_view encoded) {
  detail::Unpacked handle;
  Code code{};
  const msgpack::object* body = nullptr;
  if (auto head = detail::decode_result_head(encoded, handle, code, body); !head) return head.error();
  if (code == Code::ok) return {};
  std::string message;
  if (body != nullptr && body->type == msgpack::type::STR) message.assign(body->via.str.ptr, body->via.str.size);
  return Error{code, std::move(message)};
}
}  // namespace

std::string ReplicatedStateMachine::apply(const ApplyInfo& info, std::string_view record) {
  std::string out;
  auto envelope = decode_envelope(record);
  if (!envelope) {
    // The leader never proposes such a record, so every node answers the same.
    internal::log().error("catga: undecodable record at index {}: {}", info.index, envelope.error().message());
    detail::encode_error_result(out, Error{Code::internal, "undecodable record: " + envelope.error().message()});
    return out;
  }
  if (!formats_.contains(announcements_.format())) [[unlikely]] check_format(info.index);
  if (envelope->wire_name == kAnnounceRecord || envelope->wire_name == kWithdrawRecord ||
      envelope->wire_name == kFormatRecord) {
    return apply_membership_record(info, *envelope);
  }
  const std::int64_t now_ms = info.leader_time_ns / 1'000'000;
  if (envelope->wire_name == kOpenSessionRecord) {
    const std::uint64_t id = sessions_.open(info.index, info.position, now_ms);
    if (id == 0) {
      detail::encode_error_result(out, Error{Code::unavailable, "client session not opened (record at position " +
                                                                    std::to_string(info.position) +
                                                                    " of its entry); nothing was applied"});
    } else {
      detail::encode_result(out, Result<std::uint64_t>(id));
    }
    return out;
  }
  using Action = SessionTable::Verdict::Action;
  auto verdict = envelope->wire_name == kKeepAliveRecord
                     ? sessions_.keep_alive(envelope->session, envelope->floor, now_ms)
                     : sessions_.check(envelope->session, envelope->sequence, envelope->floor, envelope->key, now_ms);
  if (verdict.action == Action::session_unknown) return session_unknown_result();
  if (verdict.action == Action::answer) return std::move(verdict.answer);
  if (envelope->wire_name == kKeepAliveRecord) {
    detail::encode_result(out, Result<void>());
    return out;
  }
  std::unique_ptr<Span> span;
  if (tracer_ && leader_ && envelope->trace.valid()) [[unlikely]] {
    span = tracer_->start(SpanStage::apply, envelope->wire_name, envelope->trace);
  }
  apply_new(info, *envelope, out);
  if (span) [[unlikely]] span->end(outcome_of_encoded(out), info.index);
  const std::uint64_t evicted_early = sessions_.keys_evicted_early();
  sessions_.record(envelope->session, envelope->sequence, envelope->key, out, now_ms);
  if (sessions_.keys_evicted_early() != evicted_early) [[unlikely]] warn_keys_evicted_early();
  return out;
}

void ReplicatedStateMachine::warn_keys_evicted_early() {
  const auto now = std::chrono::steady_clock::now();
  if (warned_keys_at_ && now - *warned_keys_at_ < std::chrono::hours(1)) return;
  warned_keys_at_ = now;
  const auto age = std::chrono::duration_cast<std::chrono::minutes>(
      std::chrono::milliseconds(sessions_.last_early_key_age_ms()));
  internal::log().warn(
      "catga: the idempotency-key table is full ({} keys): keys now leave it after about {} min instead of {} h, "
      "so a retry with a key older than that applies again; {} keys left early since this node started (logged at "
      "most once an hour; docs/guarantees.md, idempotency keys)",
      SessionTable::kMaxKeys, age.count(),
      std::chrono::duration_cast<std::chrono::hours>(SessionTable::kKeyTtl).count(), sessions_.keys_evicted_early());
}

std::string ReplicatedStateMachine::apply_membership_record(const ApplyInfo& info, const EnvelopeView& envelope) {
  std::string out;
  if (envelope.wire_name == kAnnounceRecord) {
    auto a = decode_announcement(envelope.payload);
    if (!a) {
      detail::encode_error_result(out, Error{Code::invalid_argument, a.error().message()});
      return out;
    }
    if (!a->data_dir.empty() && cluster_format() < kDataDirFormat) {
      // Written by a member that had applied the raise: never at format 1.
      detail::encode_error_result(out, Error{Code::failed_precondition,
                                             "an announcement with a data directory needs apply format " +
                                                 std::to_string(kDataDirFormat)});
      return out;
    }
    internal::log().info("catga: member {} announced apply formats {}-{} and {} handlers at index {}{}", a->node_id,
                         a->formats.min, a->formats.max, a->handles.size(), info.index,
                         a->data_dir.empty() ? std::string() : " (data directory " + a->data_dir + ")");
    {
      std::unique_lock lock(table_mu_);
      announcements_.announce(std::move(*a));
    }
  } else if (envelope.wire_name == kFormatRecord) {
    auto format = decode_number_record(envelope.payload);
    if (!format || *format > ~std::uint32_t{0}) {
      detail::encode_error_result(out, Error{Code::invalid_argument, "bad apply format record"});
      return out;
    }
    Result<void> raised;
    {
      std::unique_lock lock(table_mu_);
      raised = announcements_.raise_format(static_cast<std::uint32_t>(*format));
    }
    if (!raised) {
      detail::encode_error_result(out, raised.error());
      return out;
    }
    internal::log().info("catga: the cluster applies entries at apply format {} from index {}", announcements_.format(),
                         info.index);
    check_format(info.index);
  } else {
    auto id = decode_number_record(envelope.payload);
    if (!id) {
      detail::encode_error_result(out, Error{Code::invalid_argument, id.error().message()});
      return out;
    }
    bool withdrawn;
    {
      std::unique_lock lock(table_mu_);
      withdrawn = announcements_.withdraw(*id);
    }
    if (withdrawn) internal::log().info("catga: member {}'s announcement withdrawn at index {}", *id, info.index);
  }
  detail::encode_result(out, Result<void>());
  return out;
}

void ReplicatedStateMachine::check_format(std::uint64_t index) const {
  const std::uint32_t format = announcements_.format();
  if (formats_.contains(format)) return;
  const std::string why = "the cluster applies entries at apply format " + std::to_string(format) +
                          " (entry " + std::to_string(index) + "), but this build implements formats " +
                          std::to_string(formats_.min) + "-" + std::to_string(formats_.max) +
                          ": run a build that implements it";
  internal::log().critical("catga: {}", why);
  throw std::runtime_error(why);
}

std::optional<Error> ReplicatedStateMachine::admission(std::string_view wire_name, MessageKind kind,
                                                       std::uint64_t self) const {
  const detail::Slot* slot = mediator_.find(wire_name);
  const bool handled = slot != nullptr && slot->kind() == kind;
  std::shared_lock lock(table_mu_);
  return announcements_.refusal(wire_name, kind, handled ? std::nullopt : std::optional<std::uint64_t>(self));
}

std::uint32_t ReplicatedStateMachine::cluster_format() const {
  std::shared_lock lock(table_mu_);
  return announcements_.format();
}

std::uint32_t ReplicatedStateMachine::agreed_format() const {
  std::shared_lock lock(table_mu_);
  return announcements_.agreed_format();
}

bool ReplicatedStateMachine::announced(const Announcement& a) const {
  std::shared_lock lock(table_mu_);
  const Announcement* held = announcements_.find(a.node_id);
  return held != nullptr && *held == a;
}

std::optional<std::string> ReplicatedStateMachine::announced_data_dir(std::uint64_t node_id) const {
  std::shared_lock lock(table_mu_);
  const Announcement* held = announcements_.find(node_id);
  if (held == nullptr) return std::nullopt;
  return held->data_dir;
}

std::vector<std::uint64_t> ReplicatedStateMachine::announced_members() const {
  std::shared_lock lock(table_mu_);
  return announcements_.members();
}

void ReplicatedStateMachine::describe(NodeStatus& status) const {
  std::shared_lock lock(table_mu_);
  status.apply_format = announcements_.format();
  status.announcements.clear();
  for (const std::uint64_t id : announcements_.members()) {
    const Announcement& a = *announcements_.find(id);
    MemberAnnouncement out{.id = id, .min_format = a.formats.min, .max_format = a.formats.max, .commands = {}, .events = {}};
    for (const auto& [name, kind] : a.handles) (kind == MessageKind::event ? out.events : out.commands).push_back(name);
    status.announcements.push_back(std::move(out));
  }
}

Announcement ReplicatedStateMachine::announcement(std::uint64_t self) const {
  Announcement a{.node_id = self, .formats = formats_, .handles = {}};
  for (const detail::Slot* slot : mediator_.slots()) {
    if (slot->kind() != MessageKind::query) a.handles.emplace(std::string(slot->wire_name()), slot->kind());
  }
  return a;
}

void ReplicatedStateMachine::apply_new(const ApplyInfo& info, const EnvelopeView& envelope, std::string& out) {
  detail::Slot* slot = mediator_.find(envelope.wire_name);
  if (envelope.kind == MessageKind::query) {  // never proposed by a node: every node answers the same
    detail::encode_error_result(out, detail::Mediator::no_handler(envelope.wire_name, envelope.kind));
    return;
  }
  // What some announced member cannot apply, no member applies: the same
  // refusal on every node (the leader's check may have raced an announcement).
  if (auto refusal = announcements_.refusal(envelope.wire_name, envelope.kind)) [[unlikely]] {
    detail::encode_error_result(out, *refusal);
    return;
  }
  if (slot == nullptr || slot->kind() != envelope.kind) [[unlikely]] {
    // Every announced member handles it, this node does not (a binary
    // downgraded, or an older build that has not announced yet): recording a
    // result here would diverge from the others. Stop this node instead.
    const std::string why = describe_message(envelope.wire_name, envelope.kind) + " at index " +
                            std::to_string(info.index) +
                            " has no handler in this build, although every member that announced handles it: "
                            "run a build that handles it on this node";
    internal::log().critical("catga: {}", why);
    throw std::runtime_error(why);
  }
  const Timestamp time{std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(info.leader_time_ns))};
  const EventInfo event_info{info.index, info.term, time, leader_, info.replay};
  if (envelope.kind == MessageKind::event) {
    static_cast<detail::EventSlotBase*>(slot)->deliver_encoded(mediator_, envelope.payload, event_info);
    detail::encode_result(out, Result<void>());
    return;
  }
  detail::StateBase& state = mediator_.state();
  CommandContext ctx = internal::CommandContextAccess::make(info.index, info.term, time, &state.id_counter());
  bool succeeded;
  try {
    std::unique_lock lock(state.mutex());
    succeeded = static_cast<detail::CommandSlotBase*>(slot)->apply_encoded_locked(state, envelope.payload, ctx, out);
  } catch (...) {
    // A failure of this node only (detail::is_node_failure): never a result.
    // RaftNode stops the node; the others apply the entry and answer.
    internal::log().critical("catga: the handler for {} failed on this node only at index {}", envelope.wire_name,
                             info.index);
    throw;
  }
  if (succeeded) mediator_.deliver_pending(ctx, event_info);
}

// Snapshot: msgpack [format, state (bin), session table (bin), announcement
// table (bin)]. No lock: the
// loop thread is the only writer of the state, and a forked child (see
// snapshot_child.hpp) has no other thread at all.
void ReplicatedStateMachine::write_snapshot(detail::SnapshotSink& sink) {
  msgpack::packer<detail::SnapshotSink> p(sink);
  p.pack_array(4);
  p.pack(kSnapshotFormat);
  detail::write_bin32(sink, [&] { mediator_.state().write_snapshot(sink); });
  for (const std::string& table : {sessions_.encode(), announcements_.encode()}) {
    p.pack_bin(static_cast<std::uint32_t>(table.size()));
    p.pack_bin_body(table.data(), static_cast<std::uint32_t>(table.size()));
  }
}

std::string ReplicatedStateMachine::snapshot() {
  std::string out;
  {
    detail::StringSnapshotSink sink(out);
    write_snapshot(sink);
  }
  return out;
}

// The decoded snapshot: everything restore() replaces, unshared until
// adopt() swaps it in; then the replaced state, freed by whoever destroys it.
class ReplicatedStateMachine::Prepared final : public PreparedRestore {
 public:
  Prepared(ReplicatedStateMachine& machine, std::unique_ptr<detail::StateBase> state)
      : machine_(machine), state_(std::move(state)) {}

  Result<void> adopt() override {
    {
      std::unique_lock lock(machine_.mediator_.state().mutex());
      machine_.mediator_.state().swap(*state_);
      std::swap(machine_.sessions_, sessions_);
    }
    {
      std::unique_lock lock(machine_.table_mu_);
      std::swap(machine_.announcements_, announcements_);
    }
    // The events of the entries the snapshot covers are not delivered on this
    // node: every-node read models rebuild from the state instead.
    machine_.mediator_.state_restored();
    return {};
  }

  ReplicatedStateMachine& machine_;
  std::unique_ptr<detail::StateBase> state_;
  SessionTable sessions_;
  AnnouncementTable announcements_;
};

Result<void> ReplicatedStateMachine::restore(std::string_view bytes) {
  auto prepared = prepare_restore(bytes);
  if (!prepared) return prepared.error();
  return (*prepared)->adopt();
}

Result<std::unique_ptr<PreparedRestore>> ReplicatedStateMachine::prepare_restore(std::string_view bytes) {
  detail::Unpacked handle;
  DecodeLimits limits{.max_bytes = SIZE_MAX, .max_array = 8, .max_map = 0, .max_str = 0, .max_bin = SIZE_MAX, .max_depth = 2};
  if (auto r = detail::unpack_one(bytes, limits, handle); !r) return Error{Code::data_loss, "snapshot: " + r.error().message()};
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 3 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER) {
    return Error{Code::data_loss, "snapshot: not a catga snapshot"};
  }
  const std::uint64_t format = o.via.array.ptr[0].via.u64;
  if (format != 1 && format != kSnapshotFormat) {
    return Error{Code::data_loss, "snapshot: format " + std::to_string(format) + " is not readable by this build"};
  }
  // Format 1 predates announcements: it restores with an empty table.
  const std::uint32_t fields = format == 1 ? 3 : 4;
  if (o.via.array.size != fields) return Error{Code::data_loss, "snapshot: not a catga snapshot"};
  for (std::uint32_t i = 1; i < fields; ++i) {
    if (o.via.array.ptr[i].type != msgpack::type::BIN) return Error{Code::data_loss, "snapshot: not a catga snapshot"};
  }
  const auto view = [&](std::uint32_t i) {
    return std::string_view(o.via.array.ptr[i].via.bin.ptr, o.via.array.ptr[i].via.bin.size);
  };
  auto prepared = std::make_unique<Prepared>(*this, mediator_.state().make_empty());
  if (auto r = prepared->sessions_.decode(view(2)); !r) return r.error();
  if (format != 1) {
    if (auto r = prepared->announcements_.decode(view(3)); !r) return r.error();
  }
  const std::uint32_t cluster_format = prepared->announcements_.format();
  if (!formats_.contains(cluster_format)) {
    return Error{Code::failed_precondition, "snapshot: the cluster applies entries at apply format " +
                                                std::to_string(cluster_format) + ", this build implements " +
                                                std::to_string(formats_.min) + "-" + std::to_string(formats_.max)};
  }
  if (auto r = prepared->state_->restore(view(1)); !r) return r.error();
  return std::unique_ptr<PreparedRestore>(std::move(prepared));
}

std::string ReplicatedStateMachine::session_unknown_result() {
  std::string out;
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  p.pack_array(3);
  p.pack(static_cast<unsigned>(Code::unavailable));
  p.pack(std::string_view("client session unknown (expired or never opened); this command was not applied"));
  p.pack(1u);
  return out;
}

bool ReplicatedStateMachine::is_session_unknown(std::string_view encoded) {
  // Every other result is a 2-element array: the first byte decides.
  FlatReader peek(encoded);
  std::uint32_t n = 0;
  std::uint64_t code = 0;
  std::string_view message;
  std::uint64_t flag = 0;
  return peek.array(n) && n == 3 && peek.uint(code) && code == static_cast<unsigned>(Code::unavailable) &&
         peek.str(message) && peek.uint(flag) && flag == 1 && peek.at_end();
}

}  // namespace catga::internal
