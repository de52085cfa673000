// Fuzz target: catga::internal::ReplicatedStateMachine::restore — a snapshot
// (user state, id counter, session table) read from disk or received from
// the leader — with a small key-value test state.
// Properties: no crash or UB; a snapshot that restores produces a snapshot
// that restores into a fresh machine and snapshots to the same bytes; a state
// built by applying commands (opened sessions, tagged, untagged, with keys and
// retries) from the input snapshots, restores into a fresh machine and both
// machines then answer further commands identically.
#include <map>
#include <vector>

#include "core/mediator.hpp"
#include "cluster/replicated_state_machine.hpp"
#include "cluster/envelope.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

struct KvState {
  std::map<std::string, std::string> values;
  std::uint64_t writes = 0;
  MSGPACK_DEFINE_MAP(values, writes);
};

struct Put {
  using catga_message = Command<std::uint64_t, "fuzz.put.v1">;
  std::string key;
  std::string value;
  MSGPACK_DEFINE_MAP(key, value);
};

// A mediator with the Put handler, and the replicated state machine over it.
struct Machine {
  Machine() : mediator(std::make_unique<detail::StateCell<KvState>>()), rsm(mediator) {
    auto handler = [](KvState& s, const Put& p, CommandContext& ctx) -> Result<std::uint64_t> {
      if (p.key.empty()) return Error{Code::invalid_argument, "empty key"};
      s.values[p.key] = p.value;
      ++s.writes;
      return ctx.new_id();
    };
    auto added = mediator.add_slot(std::make_unique<detail::CommandHandlerSlot<KvState, Put, decltype(handler)>>(handler));
    FUZZ_CHECK(added.has_value());
  }
  detail::Mediator mediator;
  internal::ReplicatedStateMachine rsm;
};

std::string put_record(std::uint64_t session, std::uint64_t sequence, std::uint64_t floor, std::string_view key,
                       const Put& put) {
  const std::string payload = encode(put);
  internal::EnvelopeView e;
  e.kind = MessageKind::command;
  e.wire_name = wire_name_of<Put>;
  e.payload = payload;
  e.session = session;
  e.sequence = sequence;
  e.floor = floor;
  e.key = key;
  return internal::encode_envelope(e);
}

std::string open_record() {
  internal::EnvelopeView e;
  e.wire_name = internal::kOpenSessionRecord;
  return internal::encode_envelope(e);
}

}  // namespace

int fuzz_state_restore(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = as_view(data, size);
  {
    Machine m;
    if (m.rsm.restore(in)) {
      const std::string snap = m.rsm.snapshot();
      Machine fresh;
      FUZZ_CHECK(fresh.rsm.restore(snap).has_value());
      FUZZ_CHECK(fresh.rsm.snapshot() == snap);
    }
  }

  // A state built by applying commands from the input.
  FuzzInput r(data, size);
  Machine a;
  std::vector<std::uint64_t> sessions;
  std::uint64_t index = 1;
  std::int64_t now_ns = std::int64_t{1} << 50;
  auto apply = [&](Machine& m, const std::string& record, std::uint32_t position) {
    return m.rsm.apply(internal::ApplyInfo{index, 1, now_ns, position}, record);
  };
  auto command = [&]() {
    const std::size_t pick = r.below(sessions.size() + 1);
    const std::uint64_t session = pick < sessions.size() ? sessions[pick] : 0;
    const std::uint64_t seq = r.below(8);
    const std::string key = r.below(4) == 0 ? r.bytes(6) : std::string();
    return put_record(session, seq, r.below(4), key, Put{r.bytes(6), r.bytes(12)});
  };
  for (int step = 0; step < 48 && !r.empty(); ++step, ++index) {
    now_ns += static_cast<std::int64_t>(r.below(8)) * 1'000'000'000;
    if (r.below(4) == 0) {
      (void)apply(a, open_record(), 0);
      sessions.push_back((index << 16));
    } else {
      (void)apply(a, command(), 0);
    }
  }
  const std::string snap = a.rsm.snapshot();
  Machine b;
  FUZZ_CHECK(b.rsm.restore(snap).has_value());
  FUZZ_CHECK(b.rsm.snapshot() == snap);
  // Both answer the same from here on (retries included).
  for (int step = 0; step < 8; ++step, ++index) {
    const std::string record = command();
    FUZZ_CHECK(apply(a, record, 0) == apply(b, record, 0));
  }
  FUZZ_CHECK(a.rsm.snapshot() == b.rsm.snapshot());
  return 0;
}

}  // namespace catga::fuzz
