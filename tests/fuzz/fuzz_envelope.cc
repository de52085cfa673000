// Fuzz target: catga::internal::decode_envelope — the bytes of every record in
// the Raft log and every forwarded command.
// Properties: no crash or UB; views point into the input; what decodes
// (with or without a trace context)
// re-encodes to bytes that decode to the same envelope (and encoding is a
// fixed point); an envelope built from the input decodes back exactly, iff it
// is within the limits; every strict prefix of an encoding is refused.
#include "cluster/envelope.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

using internal::EnvelopeView;

bool same(const EnvelopeView& a, const EnvelopeView& b) {
  return a.kind == b.kind && a.wire_name == b.wire_name && a.payload == b.payload && a.session == b.session &&
         a.sequence == b.sequence && a.floor == b.floor && a.key == b.key && a.trace == b.trace;
}

void check_decoded(std::string_view in, const EnvelopeView& e) {
  FUZZ_CHECK(static_cast<unsigned>(e.kind) <= 2);
  FUZZ_CHECK(!e.wire_name.empty() && e.wire_name.size() <= internal::kMaxWireName);
  FUZZ_CHECK(e.key.size() <= internal::kMaxIdempotencyKey);
  FUZZ_CHECK(points_into(in, e.wire_name) && points_into(in, e.payload) && points_into(in, e.key));
  const std::string again = internal::encode_envelope(e);
  auto d = internal::decode_envelope(again);
  FUZZ_CHECK(d.has_value());
  FUZZ_CHECK(same(*d, e));
  FUZZ_CHECK(internal::encode_envelope(*d) == again);
  // The size limit is honoured.
  FUZZ_CHECK(!internal::decode_envelope(in, in.size() - 1).has_value());
}

}  // namespace

int fuzz_envelope(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = as_view(data, size);
  if (auto e = internal::decode_envelope(in)) check_decoded(in, *e);

  // An envelope built from the input.
  FuzzInput r(data, size);
  const std::string wire = r.bytes(internal::kMaxWireName + 8);
  const std::string key = r.bytes(internal::kMaxIdempotencyKey + 8);
  EnvelopeView v;
  v.kind = static_cast<MessageKind>(r.below(3));
  v.wire_name = wire;
  v.key = key;
  v.session = r.u64();
  v.sequence = r.u64();
  v.floor = r.u64();
  if (r.below(2) == 1) {  // a traced envelope (nine elements)
    for (auto& b : v.trace.trace_id) b = static_cast<std::uint8_t>(r.below(256));
    for (auto& b : v.trace.span_id) b = static_cast<std::uint8_t>(r.below(256));
    v.trace.flags = static_cast<std::uint8_t>(r.below(256));
    if (!v.trace.valid()) v.trace = {};  // an invalid context is not encoded
  }
  const std::string payload = r.rest();
  v.payload = payload;
  const std::string encoded = internal::encode_envelope(v);
  auto d = internal::decode_envelope(encoded);
  const bool valid = !wire.empty() && wire.size() <= internal::kMaxWireName && key.size() <= internal::kMaxIdempotencyKey;
  FUZZ_CHECK(d.has_value() == valid);
  if (d) {
    FUZZ_CHECK(same(*d, v));
    for (std::size_t cut : {std::size_t{0}, std::size_t{1}, encoded.size() / 2, encoded.size() - 1}) {
      FUZZ_CHECK(!internal::decode_envelope(std::string_view(encoded).substr(0, cut)).has_value());
    }
  }
  return 0;
}

}  // namespace catga::fuzz
