#include "catga/codec.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace catga::detail {
namespace {
// Strings and binaries reference the input instead of being copied.
bool reference_input(msgpack::type::object_type type, std::size_t, void*) {
  return type == msgpack::type::STR || type == msgpack::type::BIN || type == msgpack::type::EXT;
}
// Zones kept for reuse by this thread (a decode inside a handler that runs
// inside another decode borrows a second one).
class ZonePool {
 public:
  ~ZonePool() {
    for (auto* z : free_) delete z;
  }
  msgpack::zone* take() {
    if (free_.empty()) return new msgpack::zone;
    auto* z = free_.back();
    free_.pop_back();
    return z;
  }
  void give(msgpack::zone* z) {
    if (free_.size() >= kKeep) {
      delete z;
      return;
    }
    z->clear();  // keeps one chunk, frees the rest
    free_.push_back(z);
  }

 private:
  static constexpr std::size_t kKeep = 4;
  std::vector<msgpack::zone*> free_;
};

ZonePool& zone_pool() {
  thread_local ZonePool pool;
  return pool;
}
}  // namespace

Unpacked::~Unpacked() {
  if (zone_ != nullptr) zone_pool().give(zone_);
}

msgpack::zone& Unpacked::zone() {
  if (zone_ == nullptr) zone_ = zone_pool().take();
  return *zone_;
}

Result<void> unpack_one(std::string_view bytes, const DecodeLimits& limits, Unpacked& out) {
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
    msgpack::zone& zone = out.zone();
    zone.clear();  // `out` may be reused
    out.object_ = msgpack::unpack(zone, bytes.data(), bytes.size(), offset, reference_input, nullptr, limit);
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
