// Fuzz target: the peer channel's frame header and handshake decoders
// (catga::internal::peer::body_length, decode_hello, decode_challenge,
// decode_proof, decode_welcome) — the
// first bytes any TCP client can send to a node.
// Properties: no crash or UB; the header length is the little-endian value,
// non-zero and within the limit; a decoded hello/welcome re-encodes into a
// frame whose header is right and whose body decodes to the same value; the
// decoded integers are the integers on the wire (no silent narrowing: a peer
// announcing version 2^32+1 must not pass as version 1); a decoded challenge
// or proof re-encodes to the same value, with nonce and MAC of exactly 32
// bytes; a hello/welcome built from the input round-trips, iff its strings
// fit the 4096-byte limit and its nonce is empty or 32 bytes.
#include "catga/codec.hpp"
#include "cluster/peer_protocol.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

namespace peer = catga::internal::peer;

bool same(const peer::Hello& a, const peer::Hello& b) {
  return a.version == b.version && a.cluster_id == b.cluster_id && a.nonce == b.nonce && a.node_id == b.node_id;
}
bool same(const peer::Welcome& a, const peer::Welcome& b) {
  return a.accepted == b.accepted && a.version == b.version && a.node_id == b.node_id && a.reason == b.reason;
}

// The body of a whole frame, after checking its header.
std::string_view body_of(const std::string& frame) {
  auto len = peer::body_length(std::string_view(frame).substr(0, peer::kHeaderBytes), frame.size());
  FUZZ_CHECK(len.has_value() && *len == frame.size() - peer::kHeaderBytes);
  return std::string_view(frame).substr(peer::kHeaderBytes);
}

// Element i of the msgpack array in `body` (which decoded, so it is one).
std::uint64_t wire_uint(std::string_view body, std::size_t i) {
  detail::Unpacked h;
  FUZZ_CHECK(detail::unpack_one(body, DecodeLimits{}, h).has_value());
  const msgpack::object& o = h.get().via.array.ptr[i];
  FUZZ_CHECK(o.type == msgpack::type::POSITIVE_INTEGER);
  return o.via.u64;
}

}  // namespace

int fuzz_peer_handshake(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = as_view(data, size);
  if (in.size() >= peer::kHeaderBytes) {
    const std::size_t max_body = in.size() > 4 ? static_cast<std::uint8_t>(in[4]) * std::size_t{4096} : 1 << 20;
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) value |= std::uint32_t{static_cast<std::uint8_t>(in[i])} << (8 * i);
    auto len = peer::body_length(in.substr(0, peer::kHeaderBytes), max_body);
    FUZZ_CHECK(len.has_value() == (value != 0 && value <= max_body));
    if (len) FUZZ_CHECK(*len == value);
  }
  FUZZ_CHECK(!peer::body_length(in.substr(0, std::min<std::size_t>(in.size(), 3)), 1 << 20).has_value());

  if (auto h = peer::decode_hello(in)) {
    FUZZ_CHECK(h->version == wire_uint(in, 1));
    std::string frame;
    peer::append_hello(frame, *h);
    auto again = peer::decode_hello(body_of(frame));
    FUZZ_CHECK(again.has_value() && same(*again, *h));
  }
  if (auto c = peer::decode_challenge(in)) {
    FUZZ_CHECK(c->nonce.size() == peer::kNonceBytes && c->mac.size() == peer::kMacBytes);
    std::string frame;
    peer::append_challenge(frame, *c);
    auto again = peer::decode_challenge(body_of(frame));
    FUZZ_CHECK(again.has_value() && again->nonce == c->nonce && again->mac == c->mac && again->node_id == c->node_id);
  }
  if (auto p = peer::decode_proof(in)) {
    FUZZ_CHECK(p->size() == peer::kMacBytes);
    std::string frame;
    peer::append_proof(frame, *p);
    auto again = peer::decode_proof(body_of(frame));
    FUZZ_CHECK(again.has_value() && *again == *p);
  }
  if (auto w = peer::decode_welcome(in)) {
    if (w->accepted) FUZZ_CHECK(w->version == wire_uint(in, 1));
    std::string frame;
    peer::append_welcome(frame, *w);
    auto again = peer::decode_welcome(body_of(frame));
    FUZZ_CHECK(again.has_value() && same(*again, *w));
  }

  // Built from the input.
  FuzzInput r(data, size);
  peer::Hello hello;
  hello.version = static_cast<unsigned>(r.u64());
  hello.node_id = r.u64();
  hello.cluster_id = r.bytes(4200);
  hello.nonce = r.bytes(40);
  std::string frame;
  peer::append_hello(frame, hello);
  auto h = peer::decode_hello(body_of(frame));
  FUZZ_CHECK(h.has_value() == (hello.cluster_id.size() <= 4096 &&
                               (hello.nonce.empty() || hello.nonce.size() == peer::kNonceBytes)));
  if (h) FUZZ_CHECK(same(*h, hello));

  peer::Welcome welcome;
  welcome.accepted = r.byte() & 1;
  if (welcome.accepted) {
    welcome.version = static_cast<unsigned>(r.u64());
    welcome.node_id = r.u64();
  } else {
    welcome.reason = r.bytes(4200);
  }
  frame.clear();
  peer::append_welcome(frame, welcome);
  auto w = peer::decode_welcome(body_of(frame));
  FUZZ_CHECK(w.has_value() == (welcome.reason.size() <= 4096));
  if (w) FUZZ_CHECK(same(*w, welcome));
  return 0;
}

}  // namespace catga::fuzz
