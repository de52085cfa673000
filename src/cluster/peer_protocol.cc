#include "cluster/peer_protocol.hpp"

#include <cstring>

#include "catga/codec.hpp"

namespace catga::internal::peer {
namespace {

using Packer = msgpack::packer<detail::StringSink>;

// Reserves the header, lets `body` pack, then fills in the length.
template <class F>
void frame(std::string& out, F&& body) {
  const std::size_t start = out.size();
  out.append(kHeaderBytes, '\0');
  detail::StringSink sink{&out};
  Packer p(sink);
  body(p);
  const auto len = static_cast<std::uint32_t>(out.size() - start - kHeaderBytes);
  for (std::size_t i = 0; i < kHeaderBytes; ++i) out[start + i] = static_cast<char>((len >> (8 * i)) & 0xff);
}

void pack_str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<std::uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}
void pack_bin(Packer& p, std::string_view s) {
  p.pack_bin(static_cast<std::uint32_t>(s.size()));
  p.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

Error bad(const std::string& what) { return Error{Code::invalid_argument, "peer protocol: " + what}; }

Result<const msgpack::object*> unpack_array(std::string_view body, std::size_t min_size, detail::Unpacked& handle,
                                            std::size_t max_records = 16) {
  DecodeLimits limits{.max_bytes = body.size(), .max_array = std::max<std::size_t>(max_records, 16), .max_map = 0,
                      .max_str = 4096, .max_bin = body.size(), .max_depth = 4};
  if (auto r = detail::unpack_one(body, limits, handle); !r) return bad(r.error().message());
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < min_size) return bad("unexpected frame");
  return o.via.array.ptr;
}

bool is_uint(const msgpack::object& o) { return o.type == msgpack::type::POSITIVE_INTEGER; }
// A canonical code (narrowing a larger number into Code would alias it).
bool is_code(const msgpack::object& o) {
  return is_uint(o) && o.via.u64 <= static_cast<std::uint64_t>(Code::unauthenticated);
}
bool is_small_uint(const msgpack::object& o) { return is_uint(o) && o.via.u64 <= 0xffffffffu; }
bool is_str(const msgpack::object& o) { return o.type == msgpack::type::STR; }
bool is_bin(const msgpack::object& o) { return o.type == msgpack::type::BIN; }
bool is_bool(const msgpack::object& o) { return o.type == msgpack::type::BOOLEAN; }
std::string str(const msgpack::object& o) { return std::string(o.via.str.ptr, o.via.str.size); }
std::string bin(const msgpack::object& o) { return std::string(o.via.bin.ptr, o.via.bin.size); }

}  // namespace

void append_hello(std::string& out, const Hello& h) {
  frame(out, [&](Packer& p) {
    p.pack_array(5);
    pack_str(p, kMagic);
    p.pack(h.version);
    pack_str(p, h.cluster_id);
    pack_bin(p, h.nonce);
    p.pack(h.node_id);
  });
}

void append_welcome(std::string& out, const Welcome& w) {
  frame(out, [&](Packer& p) {
    if (w.accepted) {
      p.pack_array(3);
      pack_str(p, "welcome");
      p.pack(w.version);
      p.pack(w.node_id);
    } else {
      p.pack_array(2);
      pack_str(p, "refused");
      pack_str(p, w.reason);
    }
  });
}

void append_challenge(std::string& out, const Challenge& c) {
  frame(out, [&](Packer& p) {
    p.pack_array(4);
    pack_str(p, "challenge");
    pack_bin(p, c.nonce);
    pack_bin(p, c.mac);
    p.pack(c.node_id);
  });
}

void append_proof(std::string& out, std::string_view mac) {
  frame(out, [&](Packer& p) {
    p.pack_array(2);
    pack_str(p, "proof");
    pack_bin(p, mac);
  });
}

void append_message(std::string& out, const Message& m) {
  frame(out, [&](Packer& p) {
    switch (m.type) {
      case Type::forward:
        p.pack_array(3);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        p.pack_array(static_cast<std::uint32_t>(m.records.size()));
        for (const auto& r : m.records) pack_bin(p, r);
        break;
      case Type::forwarded:
        p.pack_array(3);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        p.pack_array(static_cast<std::uint32_t>(m.outcomes.size()));
        for (const auto& o : m.outcomes) {
          p.pack_array(3);
          p.pack(static_cast<unsigned>(o.code));
          pack_bin(p, o.bytes);
          p.pack(o.index);
        }
        break;
      case Type::read:
      case Type::build:
        p.pack_array(2);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        break;
      case Type::member:
        p.pack_array(3);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        p.pack(m.member.node_id);
        break;
      case Type::member_state:
        p.pack_array(7);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        p.pack(m.member.node_id);
        p.pack(m.member.announced);
        pack_str(p, m.member.identity);
        p.pack(m.member.term);
        p.pack(m.member.settled);
        break;
      case Type::build_info:
        p.pack_array(5);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        p.pack(m.build.node_id);
        p.pack(m.build.min_format);
        p.pack(m.build.max_format);
        break;
      case Type::read_index:
        p.pack_array(4);
        p.pack(static_cast<unsigned>(m.type));
        p.pack(m.id);
        p.pack(static_cast<unsigned>(m.code));
        if (m.code == Code::ok) p.pack(m.index);
        else pack_str(p, m.message);
        break;
    }
  });
}

Result<std::size_t> body_length(std::string_view header, std::size_t max_body) {
  if (header.size() != kHeaderBytes) return bad("short header");
  std::uint32_t len = 0;
  for (std::size_t i = 0; i < kHeaderBytes; ++i) len |= static_cast<std::uint32_t>(static_cast<unsigned char>(header[i])) << (8 * i);
  if (len == 0) return bad("empty frame");
  if (len > max_body) return bad("frame of " + std::to_string(len) + " bytes exceeds the limit of " + std::to_string(max_body));
  return static_cast<std::size_t>(len);
}

Result<Hello> decode_hello(std::string_view body) {
  detail::Unpacked handle;
  auto f = unpack_array(body, 5, handle);
  if (!f) return f.error();
  const msgpack::object* a = *f;
  if (!is_str(a[0]) || str(a[0]) != kMagic) return bad("not a catga peer");
  if (!is_small_uint(a[1]) || !is_str(a[2]) || !is_bin(a[3]) || !is_uint(a[4])) return bad("malformed hello");
  if (a[3].via.bin.size != 0 && a[3].via.bin.size != kNonceBytes) return bad("malformed hello nonce");
  return Hello{static_cast<unsigned>(a[1].via.u64), str(a[2]), bin(a[3]), a[4].via.u64};
}

Result<Challenge> decode_challenge(std::string_view body) {
  detail::Unpacked handle;
  auto f = unpack_array(body, 4, handle);
  if (!f) return f.error();
  const msgpack::object* a = *f;
  if (!is_str(a[0]) || str(a[0]) != "challenge") return bad("expected an authentication challenge");
  if (!is_bin(a[1]) || a[1].via.bin.size != kNonceBytes || !is_bin(a[2]) || a[2].via.bin.size != kMacBytes ||
      !is_uint(a[3])) {
    return bad("malformed challenge");
  }
  return Challenge{bin(a[1]), bin(a[2]), a[3].via.u64};
}

Result<std::string> decode_proof(std::string_view body) {
  detail::Unpacked handle;
  auto f = unpack_array(body, 2, handle);
  if (!f) return f.error();
  const msgpack::object* a = *f;
  if (!is_str(a[0]) || str(a[0]) != "proof") return bad("expected an authentication proof");
  if (!is_bin(a[1]) || a[1].via.bin.size != kMacBytes) return bad("malformed proof");
  return bin(a[1]);
}

Result<Welcome> decode_welcome(std::string_view body) {
  detail::Unpacked handle;
  auto f = unpack_array(body, 2, handle);
  if (!f) return f.error();
  const msgpack::object* a = *f;
  if (!is_str(a[0])) return bad("malformed welcome");
  if (str(a[0]) == "refused" && is_str(a[1])) return Welcome{false, 0, 0, str(a[1])};
  if (str(a[0]) == "welcome" && handle.get().via.array.size >= 3 && is_small_uint(a[1]) && is_uint(a[2])) {
    return Welcome{true, static_cast<unsigned>(a[1].via.u64), a[2].via.u64, {}};
  }
  return bad("malformed welcome");
}

Result<Message> decode_message(std::string_view body, std::size_t max_records) {
  detail::Unpacked handle;
  auto f = unpack_array(body, 2, handle, max_records);
  if (!f) return f.error();
  const msgpack::object* a = *f;
  const std::uint32_t n = handle.get().via.array.size;
  if (!is_small_uint(a[0]) || !is_uint(a[1])) return bad("malformed message");
  Message m;
  m.type = static_cast<Type>(a[0].via.u64);
  m.id = a[1].via.u64;
  switch (m.type) {
    case Type::forward: {
      if (n < 3 || a[2].type != msgpack::type::ARRAY) return bad("malformed forward");
      const auto& list = a[2].via.array;
      if (list.size == 0) return bad("empty forward");
      if (list.size > max_records) return bad("more than " + std::to_string(max_records) + " records in one frame");
      for (std::uint32_t i = 0; i < list.size; ++i) {
        if (!is_bin(list.ptr[i])) return bad("forwarded record is not binary");
        m.records.emplace_back(list.ptr[i].via.bin.ptr, list.ptr[i].via.bin.size);
      }
      return m;
    }
    case Type::forwarded: {
      if (n < 3 || a[2].type != msgpack::type::ARRAY) return bad("malformed forwarded");
      const auto& list = a[2].via.array;
      for (std::uint32_t i = 0; i < list.size; ++i) {
        const auto& o = list.ptr[i];
        if (o.type != msgpack::type::ARRAY || o.via.array.size < 3 || !is_code(o.via.array.ptr[0]) ||
            !is_bin(o.via.array.ptr[1]) || !is_uint(o.via.array.ptr[2])) {
          return bad("malformed outcome");
        }
        const auto* e = o.via.array.ptr;
        m.outcomes.push_back(Outcome{static_cast<Code>(e[0].via.u64), std::string(e[1].via.bin.ptr, e[1].via.bin.size), e[2].via.u64});
      }
      return m;
    }
    case Type::read:
    case Type::build:
      return m;
    case Type::build_info:
      if (n < 5 || !is_uint(a[2]) || !is_small_uint(a[3]) || !is_small_uint(a[4]) || a[3].via.u64 > a[4].via.u64) {
        return bad("malformed build answer");
      }
      m.build = BuildInfo{a[2].via.u64, static_cast<std::uint32_t>(a[3].via.u64), static_cast<std::uint32_t>(a[4].via.u64)};
      return m;
    case Type::member:
      if (n < 3 || !is_uint(a[2])) return bad("malformed member question");
      m.member.node_id = a[2].via.u64;
      return m;
    case Type::member_state:
      if (n < 7 || !is_uint(a[2]) || !is_bool(a[3]) || !is_str(a[4]) || !is_uint(a[5]) || !is_bool(a[6])) {
        return bad("malformed member state");
      }
      m.member = MemberState{a[2].via.u64, a[3].via.boolean, str(a[4]), a[5].via.u64, a[6].via.boolean};
      return m;
    case Type::read_index:
      if (n < 4 || !is_code(a[2])) return bad("malformed read index");
      m.code = static_cast<Code>(a[2].via.u64);
      if (m.code == Code::ok) {
        if (!is_uint(a[3])) return bad("malformed read index");
        m.index = a[3].via.u64;
      } else {
        if (!is_str(a[3])) return bad("malformed read index");
        m.message = str(a[3]);
      }
      return m;
  }
  return bad("unknown message type " + std::to_string(a[0].via.u64));
}

}  // namespace catga::internal::peer
