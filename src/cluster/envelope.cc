#include "cluster/envelope.hpp"

#include <algorithm>

#include "catga/codec.hpp"
#include "cluster/flat_reader.hpp"

namespace catga::internal {

void encode_envelope(std::string& out, const EnvelopeView& e) {
  // Headers take at most 5 bytes each, integers 9: one allocation.
  const bool traced = e.trace.valid();
  out.reserve(out.size() + 9 * 9 + e.wire_name.size() + e.payload.size() + e.key.size() + (traced ? kTraceBytes : 0));
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  p.pack_array(traced ? 9 : 8);
  p.pack(kEnvelopeFormat);
  p.pack(static_cast<unsigned>(e.kind));
  p.pack_str(static_cast<std::uint32_t>(e.wire_name.size()));
  p.pack_str_body(e.wire_name.data(), static_cast<std::uint32_t>(e.wire_name.size()));
  p.pack_bin(static_cast<std::uint32_t>(e.payload.size()));
  p.pack_bin_body(e.payload.data(), static_cast<std::uint32_t>(e.payload.size()));
  p.pack(e.session);
  p.pack(e.sequence);
  p.pack(e.floor);
  p.pack_str(static_cast<std::uint32_t>(e.key.size()));
  p.pack_str_body(e.key.data(), static_cast<std::uint32_t>(e.key.size()));
  if (traced) {
    char trace[kTraceBytes];
    std::copy(e.trace.trace_id.begin(), e.trace.trace_id.end(), trace);
    std::copy(e.trace.span_id.begin(), e.trace.span_id.end(), trace + 16);
    trace[24] = static_cast<char>(e.trace.flags);
    p.pack_bin(kTraceBytes);
    p.pack_bin_body(trace, kTraceBytes);
  }
}

namespace {
Error bad(const std::string& what) { return Error{Code::invalid_argument, "envelope: " + what}; }

// The ninth element, if it is a valid trace context; anything else there is
// ignored (as builds before tracing ignore the element altogether).
TraceContext read_trace(std::string_view bytes) {
  TraceContext t;
  if (bytes.size() != kTraceBytes) return t;
  std::copy(bytes.begin(), bytes.begin() + 16, t.trace_id.begin());
  std::copy(bytes.begin() + 16, bytes.begin() + 24, t.span_id.begin());
  t.flags = static_cast<std::uint8_t>(bytes[24]);
  return t.valid() ? t : TraceContext{};
}

// The common case — exactly the fields this build writes (eight, or nine with
// a trace context), in canonical
// form and within every limit — read without the general decoder. Anything
// else (including every malformed input) takes the general path below.
bool decode_fast(std::string_view bytes, EnvelopeView& e) {
  FlatReader r(bytes);
  std::uint32_t n = 0;
  std::uint64_t format = 0, kind = 0;
  if (!r.array(n) || (n != 8 && n != 9) || !r.uint(format) || format != kEnvelopeFormat || !r.uint(kind) || kind > 2) return false;
  if (!r.str(e.wire_name) || e.wire_name.empty() || e.wire_name.size() > kMaxWireName || !r.bin(e.payload)) return false;
  if (!r.uint(e.session) || !r.uint(e.sequence) || !r.uint(e.floor) || !r.str(e.key)) return false;
  if (e.key.size() > std::min(kMaxIdempotencyKey, kMaxWireName)) return false;
  if (n == 9) {
    std::string_view trace;
    if (!r.bin(trace) || trace.size() != kTraceBytes) return false;
    e.trace = read_trace(trace);
  }
  if (!r.at_end()) return false;
  e.kind = static_cast<MessageKind>(kind);
  return true;
}

}  // namespace

Result<EnvelopeView> decode_envelope(std::string_view bytes, std::size_t max_bytes) {
  if (EnvelopeView e; bytes.size() <= max_bytes && decode_fast(bytes, e)) return e;
  // An envelope is flat: an 8-element array of scalars, so tight limits are safe.
  DecodeLimits limits{.max_bytes = max_bytes, .max_array = 16, .max_map = 0, .max_str = kMaxWireName,
                      .max_bin = max_bytes, .max_depth = 2};
  detail::Unpacked handle;
  if (auto r = detail::unpack_one(bytes, limits, handle); !r) return bad(r.error().message());
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 8) return bad("not an envelope");
  const msgpack::object* f = o.via.array.ptr;
  if (f[0].type != msgpack::type::POSITIVE_INTEGER) return bad("not an envelope");
  if (f[0].via.u64 != kEnvelopeFormat) {
    return bad("format " + std::to_string(f[0].via.u64) + " is not readable by this build (reads " +
               std::to_string(kEnvelopeFormat) + ")");
  }
  if (f[1].type != msgpack::type::POSITIVE_INTEGER || f[1].via.u64 > 2) return bad("unknown message kind");
  if (f[2].type != msgpack::type::STR || f[2].via.str.size == 0) return bad("missing wire name");
  if (f[3].type != msgpack::type::BIN) return bad("payload is not binary");
  if (f[4].type != msgpack::type::POSITIVE_INTEGER || f[5].type != msgpack::type::POSITIVE_INTEGER ||
      f[6].type != msgpack::type::POSITIVE_INTEGER) {
    return bad("session, sequence and floor must be unsigned integers");
  }
  if (f[7].type != msgpack::type::STR) return bad("idempotency key must be a string");
  if (f[7].via.str.size > kMaxIdempotencyKey) return bad("idempotency key longer than " + std::to_string(kMaxIdempotencyKey) + " bytes");
  // The zone only holds the array; strings and binaries reference `bytes`.
  EnvelopeView e;
  e.kind = static_cast<MessageKind>(f[1].via.u64);
  e.wire_name = std::string_view(f[2].via.str.ptr, f[2].via.str.size);
  e.payload = std::string_view(f[3].via.bin.ptr, f[3].via.bin.size);
  e.session = f[4].via.u64;
  e.sequence = f[5].via.u64;
  e.floor = f[6].via.u64;
  e.key = std::string_view(f[7].via.str.ptr, f[7].via.str.size);
  if (o.via.array.size >= 9 && f[8].type == msgpack::type::BIN) {
    e.trace = read_trace(std::string_view(f[8].via.bin.ptr, f[8].via.bin.size));
  }
  return e;
}

}  // namespace catga::internal
