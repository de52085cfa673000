// Fuzz target: catga::internal::peer::decode_message — every frame after the
// handshake (forward, forwarded, read, read_index, member, member_state,
// build, build_info).
// Input: byte 0 picks max_records (1..64), the rest is the frame body.
// Properties: no crash or UB; a forward carries 1..max_records records; a
// decoded message re-encodes into a frame that decodes to the same message;
// the decoded type and codes are the integers on the wire (no silent
// narrowing: code 256 must not pass as ok); a message built from the input
// within the limits round-trips.
#include "catga/codec.hpp"
#include "cluster/peer_protocol.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

namespace peer = catga::internal::peer;

bool same(const peer::Message& a, const peer::Message& b) {
  if (a.type != b.type || a.id != b.id) return false;
  switch (a.type) {
    case peer::Type::forward:
      return a.records == b.records;
    case peer::Type::forwarded:
      if (a.outcomes.size() != b.outcomes.size()) return false;
      for (std::size_t i = 0; i < a.outcomes.size(); ++i) {
        if (a.outcomes[i].code != b.outcomes[i].code || a.outcomes[i].bytes != b.outcomes[i].bytes ||
            a.outcomes[i].index != b.outcomes[i].index) {
          return false;
        }
      }
      return true;
    case peer::Type::read:
      return true;
    case peer::Type::read_index:
      return a.code == b.code && (a.code == Code::ok ? a.index == b.index : a.message == b.message);
    case peer::Type::member:
      return a.member.node_id == b.member.node_id;
    case peer::Type::member_state:
      return a.member == b.member;
    case peer::Type::build:
      return true;
    case peer::Type::build_info:
      return a.build == b.build;
  }
  return false;
}

// The decoded integers are the wire's integers.
void check_faithful(std::string_view body, const peer::Message& m) {
  detail::Unpacked h;
  FUZZ_CHECK(detail::unpack_one(body, DecodeLimits{}, h).has_value());
  const msgpack::object* a = h.get().via.array.ptr;
  FUZZ_CHECK(a[0].via.u64 == static_cast<unsigned>(m.type));
  if (m.type == peer::Type::read_index) FUZZ_CHECK(a[2].via.u64 == static_cast<unsigned>(m.code));
  if (m.type == peer::Type::forwarded) {
    for (std::size_t i = 0; i < m.outcomes.size(); ++i) {
      FUZZ_CHECK(a[2].via.array.ptr[i].via.array.ptr[0].via.u64 == static_cast<unsigned>(m.outcomes[i].code));
    }
  }
}

std::string_view body_of(const std::string& frame) {
  auto len = peer::body_length(std::string_view(frame).substr(0, peer::kHeaderBytes), frame.size());
  FUZZ_CHECK(len.has_value() && *len == frame.size() - peer::kHeaderBytes);
  return std::string_view(frame).substr(peer::kHeaderBytes);
}

}  // namespace

int fuzz_peer_message(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t max_records = 1 + data[0] % 64;
  const std::string_view body = as_view(data + 1, size - 1);
  if (auto m = peer::decode_message(body, max_records)) {
    if (m->type == peer::Type::forward) FUZZ_CHECK(!m->records.empty() && m->records.size() <= max_records);
    check_faithful(body, *m);
    std::string frame;
    peer::append_message(frame, *m);
    auto again = peer::decode_message(body_of(frame), max_records);
    FUZZ_CHECK(again.has_value() && same(*again, *m));
  }

  // A message built from the rest of the input, within the limits.
  FuzzInput r(data + 1, size - 1);
  peer::Message m;
  m.type = static_cast<peer::Type>(1 + r.below(8));
  m.id = r.u64();
  switch (m.type) {
    case peer::Type::forward: {
      const std::size_t n = 1 + r.below(max_records);
      for (std::size_t i = 0; i < n; ++i) m.records.push_back(r.bytes(200));
      break;
    }
    case peer::Type::forwarded: {
      const std::size_t n = r.below(std::max<std::size_t>(max_records, 16) + 1);
      for (std::size_t i = 0; i < n; ++i) {
        m.outcomes.push_back(peer::Outcome{static_cast<Code>(r.below(17)), r.bytes(200), r.u64()});
      }
      break;
    }
    case peer::Type::read:
      break;
    case peer::Type::read_index:
      m.code = static_cast<Code>(r.below(17));
      if (m.code == Code::ok) m.index = r.u64();
      else m.message = r.bytes(4096);
      break;
    case peer::Type::member:
      m.member.node_id = r.u64();
      break;
    case peer::Type::member_state:
      m.member.node_id = r.u64();
      m.member.announced = r.below(2) == 1;
      m.member.identity = r.bytes(100);
      m.member.term = r.u64();
      m.member.settled = r.below(2) == 1;
      break;
    case peer::Type::build:
      break;
    case peer::Type::build_info:
      m.build.node_id = r.u64();
      m.build.min_format = static_cast<std::uint32_t>(r.below(1u << 20));
      m.build.max_format = m.build.min_format + static_cast<std::uint32_t>(r.below(1u << 20));
      break;
  }
  std::string frame;
  peer::append_message(frame, m);
  auto d = peer::decode_message(body_of(frame), max_records);
  FUZZ_CHECK(d.has_value() && same(*d, m));
  return 0;
}

}  // namespace catga::fuzz
