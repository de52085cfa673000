#include "catga/codec.hpp"

#include <algorithm>
#include <string>

namespace catga::detail {
namespace {
// Strings and binaries reference the input instead of being copied.
bool reference_input(msgpack::type::object_type type, std::size_t, void*) {
  return type == msgpack::type::STR || type == msgpack::type::BIN || type == msgpack::type::EXT;
}
}  // namespace

Result<void> unpack_one(std::string_view bytes, const DecodeLimits& limits, msgpack::object_handle& handle) {
  if (bytes.empty()) return Error{Code::invalid_argument, "msgpack: empty input"};
  if (bytes.size() > limits.max_bytes) {
    return Error{Code::invalid_argument, "msgpack: input of " + std::to_string(bytes.size()) +
                                             " bytes exceeds the limit of " + std::to_string(limits.max_bytes)};
  }
  // Every element takes at least one byte: a header announcing more elements
  // than there are bytes is a lie, refused before the decoder allocates room
  // for them.
  msgpack::unpack_limit limit(std::min(limits.max_array, bytes.size()), std::min(limits.max_map, bytes.size() / 2),
                              limits.max_str, limits.max_bin, 0xffffffff, limits.max_depth);
  std::size_t offset = 0;
  try {
    handle = msgpack::unpack(bytes.data(), bytes.size(), offset, reference_input, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    return Error{Code::invalid_argument, "msgpack: truncated input"};
  } catch (const msgpack::depth_size_overflow&) {
    return Error{Code::invalid_argument, "msgpack: nesting exceeds the decoder's depth limit"};
  } catch (const msgpack::size_overflow& e) {
    return Error{Code::invalid_argument, std::string("msgpack: a size exceeds the decoder's limits (") + e.what() + ")"};
  } catch (const std::exception& e) {
    return Error{Code::invalid_argument, std::string("msgpack: malformed input (") + e.what() + ")"};
  }
  if (offset != bytes.size()) {
    return Error{Code::invalid_argument, "msgpack: " + std::to_string(bytes.size() - offset) +
                                             " trailing bytes after the value"};
  }
  return {};
}

Error conversion_error(std::string_view type_hint, const char* what) {
  return Error{Code::invalid_argument,
               std::string("msgpack: value does not match the expected type ") + std::string(type_hint) + " (" + what + ")"};
}

}  // namespace catga::detail
