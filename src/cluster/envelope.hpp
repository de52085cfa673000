// Envelope: how one message travels through the Raft log and the peer
// channel — kind, wire name, encoded payload, and the client session
// (session id, sequence) that makes retries exactly-once.
//
// Encoding: msgpack array [format, kind, wire_name, payload(bin), session,
// sequence, floor, key], and a ninth element, trace(bin 25: trace id 16,
// span id 8, flags 1), only when the command travels under a W3C trace
// context (catga/tracing.hpp).
//
// Why the trace context needs no new entry format: every build since the
// envelope's first (format 1) reads an array of *at least* its fields and
// ignores what follows (the general decoder below; the fast path only takes
// the exact shape), so a node that predates tracing applies a traced command
// exactly as an untraced one — the trace never changes the state. An
// envelope without a trace context is byte-identical to what those builds
// write. tests/cluster/envelope_trace_test.cc pins both with golden bytes.
// Decoding is zero-copy (views into the input) and never UB on bad input.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "catga/message.hpp"
#include "catga/result.hpp"
#include "catga/tracing.hpp"

namespace catga::internal {

inline constexpr unsigned kEnvelopeFormat = 1;
// Longest wire name an envelope may carry.
inline constexpr std::size_t kMaxWireName = 256;
// Longest idempotency key an envelope may carry.
inline constexpr std::size_t kMaxIdempotencyKey = 256;

struct EnvelopeView {
  MessageKind kind = MessageKind::command;
  std::string_view wire_name;
  std::string_view payload;
  std::uint64_t session = 0;   // 0: no session (not de-duplicated)
  std::uint64_t sequence = 0;
  std::uint64_t floor = 0;     // lowest sequence the session still awaits
  std::string_view key;        // caller-supplied idempotency key ("" if none)
  TraceContext trace;          // invalid: none (the eight-field envelope)
};
inline constexpr std::size_t kTraceBytes = 16 + 8 + 1;

void encode_envelope(std::string& out, const EnvelopeView& envelope);
inline std::string encode_envelope(const EnvelopeView& envelope) {
  std::string out;
  encode_envelope(out, envelope);
  return out;
}

// The views point into `bytes`.
Result<EnvelopeView> decode_envelope(std::string_view bytes, std::size_t max_bytes = 64u << 20);

}  // namespace catga::internal
