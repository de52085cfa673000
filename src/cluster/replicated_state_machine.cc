#include "cluster/replicated_state_machine.hpp"

#include "core/flat_reader.hpp"
#include "core/log.hpp"

#include <mutex>
#include <shared_mutex>

namespace catga::internal {
namespace {
constexpr unsigned kSnapshotFormat = 1;
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
  apply_new(info, *envelope, out);
  sessions_.record(envelope->session, envelope->sequence, envelope->key, out, now_ms);
  return out;
}

void ReplicatedStateMachine::apply_new(const ApplyInfo& info, const EnvelopeView& envelope, std::string& out) {
  detail::Slot* slot = mediator_.find(envelope.wire_name);
  if (slot == nullptr || slot->kind() != envelope.kind) {
    detail::encode_error_result(out, detail::Mediator::no_handler(envelope.wire_name, envelope.kind));
    return;
  }
  const Timestamp time{std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(info.leader_time_ns))};
  const EventInfo event_info{info.index, info.term, time, leader_, info.replay};
  if (envelope.kind == MessageKind::event) {
    static_cast<detail::EventSlotBase*>(slot)->deliver_encoded(mediator_, envelope.payload, event_info);
    detail::encode_result(out, Result<void>());
    return;
  }
  detail::StateBase& state = mediator_.state();
  CommandContext ctx(info.index, info.term, time, &state.id_counter());
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

// Snapshot: msgpack [format, state (bin), session table (bin)]. No lock: the
// loop thread is the only writer of the state, and a forked child (see
// snapshot_child.hpp) has no other thread at all.
void ReplicatedStateMachine::write_snapshot(detail::SnapshotSink& sink) {
  msgpack::packer<detail::SnapshotSink> p(sink);
  p.pack_array(3);
  p.pack(kSnapshotFormat);
  detail::write_bin32(sink, [&] { mediator_.state().write_snapshot(sink); });
  const std::string sessions = sessions_.encode();
  p.pack_bin(static_cast<std::uint32_t>(sessions.size()));
  p.pack_bin_body(sessions.data(), static_cast<std::uint32_t>(sessions.size()));
}

std::string ReplicatedStateMachine::snapshot() {
  std::string out;
  {
    detail::StringSnapshotSink sink(out);
    write_snapshot(sink);
  }
  return out;
}

Result<void> ReplicatedStateMachine::restore(std::string_view bytes) {
  detail::Unpacked handle;
  DecodeLimits limits{.max_bytes = SIZE_MAX, .max_array = 8, .max_map = 0, .max_str = 0, .max_bin = SIZE_MAX, .max_depth = 2};
  if (auto r = detail::unpack_one(bytes, limits, handle); !r) return Error{Code::data_loss, "snapshot: " + r.error().message()};
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 3 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
      o.via.array.ptr[1].type != msgpack::type::BIN || o.via.array.ptr[2].type != msgpack::type::BIN) {
    return Error{Code::data_loss, "snapshot: not a catga snapshot"};
  }
  if (o.via.array.ptr[0].via.u64 != kSnapshotFormat) {
    return Error{Code::data_loss,
                 "snapshot: format " + std::to_string(o.via.array.ptr[0].via.u64) + " is not readable by this build"};
  }
  const auto& state = o.via.array.ptr[1].via.bin;
  const auto& sessions = o.via.array.ptr[2].via.bin;
  SessionTable table;
  if (auto r = table.decode(std::string_view(sessions.ptr, sessions.size)); !r) return r;
  {
    std::unique_lock lock(mediator_.state().mutex());
    if (auto r = mediator_.state().restore(std::string_view(state.ptr, state.size)); !r) return r;
    sessions_ = std::move(table);
  }
  // The events of the entries the snapshot covers are not delivered on this
  // node: every-node read models rebuild from the state instead.
  mediator_.state_restored();
  return {};
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
