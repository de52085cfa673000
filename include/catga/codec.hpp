// catga/codec.hpp — MessagePack encoding of messages, results and state.
//
// Every message, result and state type is serialized with msgpack-c. Declare
// fields with `MSGPACK_DEFINE_MAP(a, b, c)` (by name: adding a field later
// keeps old data readable; a missing field keeps its default).
//
// `decode` never has undefined behaviour on bad input: garbage, truncated,
// oversized or wrongly-typed bytes give `Code::invalid_argument` with a
// message saying what was wrong. Limits bound what a hostile input can make
// the decoder allocate.
//
// Thread-safety: pure functions.
#pragma once

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST 1
#endif
#include <msgpack.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include "catga/export.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga {
template <class T>
concept EmptyMessage = Message<T> && std::is_empty_v<T>;
}  // namespace catga

// A message without fields needs no MSGPACK_DEFINE_MAP: it travels as {}.
namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {
  template <catga::EmptyMessage T>
  struct pack<T> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const T&) const {
      o.pack_map(0);
      return o;
    }
  };
  template <catga::EmptyMessage T>
  struct convert<T> {
    const msgpack::object& operator()(const msgpack::object& o, T&) const {
      if (o.type != msgpack::type::MAP && o.type != msgpack::type::NIL) throw msgpack::type_error();
      return o;
    }
  };
  }  // namespace adaptor
}
}  // namespace msgpack

namespace catga {

struct DecodeLimits {
  std::size_t max_bytes = 64u << 20;   // whole input
  std::size_t max_array = 1u << 20;    // elements in one array
  std::size_t max_map = 1u << 20;      // pairs in one map
  std::size_t max_str = 64u << 20;     // bytes in one string
  std::size_t max_bin = 64u << 20;     // bytes in one binary
  std::size_t max_depth = 64;          // nesting
};

// Appends the MessagePack encoding of `value` to `out`.
template <class T>
void encode_to(std::string& out, const T& value);

// The MessagePack encoding of `value`.
template <class T>
std::string encode(const T& value) {
  std::string out;
  out.reserve(128);  // most messages fit: one allocation instead of a chain of regrowths
  encode_to(out, value);
  return out;
}

// Decodes exactly one value of type T from `bytes` (trailing bytes are an error).
template <class T>
Result<T> decode(std::string_view bytes, const DecodeLimits& limits = {});

namespace detail {

// msgpack-c writes through a buffer with `write(const char*, size_t)`.
struct StringSink {
  std::string* out;
  void write(const char* data, std::size_t size) { out->append(data, size); }
};

// One decoded msgpack object and the zone holding its arrays and maps. The
// zone is borrowed from a small per-thread pool and handed back (cleared) on
// destruction, so decoding on a busy thread does not allocate a zone each time.
class CATGA_EXPORT Unpacked {
 public:
  Unpacked() = default;
  ~Unpacked();
  Unpacked(const Unpacked&) = delete;
  Unpacked& operator=(const Unpacked&) = delete;
  const msgpack::object& get() const { return object_; }
  msgpack::zone& zone();  // borrows one on first use

 private:
  msgpack::zone* zone_ = nullptr;
  msgpack::object object_;
  friend Result<void> unpack_one(std::string_view, const DecodeLimits&, Unpacked&);
};

// Unpacks one object (zero-copy for str/bin: the object references `bytes`).
// The object is valid while both `bytes` and `out` live.
CATGA_EXPORT Result<void> unpack_one(std::string_view bytes, const DecodeLimits& limits, Unpacked& out);
CATGA_EXPORT Error conversion_error(std::string_view type_hint, const char* what);

}  // namespace detail

template <class T>
void encode_to(std::string& out, const T& value) {
  detail::StringSink sink{&out};
  msgpack::pack(sink, value);
}

template <class T>
Result<T> decode(std::string_view bytes, const DecodeLimits& limits) {
  detail::Unpacked handle;
  if (auto unpacked = detail::unpack_one(bytes, limits, handle); !unpacked) return unpacked.error();
  try {
    T value{};
    handle.get().convert(value);
    return value;
  } catch (const std::exception& e) {
    if constexpr (Message<T>) {
      return detail::conversion_error(wire_name_of<T>, e.what());
    } else {
      return detail::conversion_error("value", e.what());
    }
  }
}

}  // namespace catga
