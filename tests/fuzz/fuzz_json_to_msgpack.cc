// Fuzz target: catga::http::internal::json_to_msgpack — the JSON body of every
// HTTP command — and its inverse msgpack_to_json.
// Properties: no crash or UB (including deep nesting); what converts is one
// MessagePack value; rendering it as JSON and converting back gives the same
// MessagePack bytes (JSON → MessagePack → JSON → MessagePack is a fixed point).
#include "catga/codec.hpp"
#include "fuzz_support.hpp"
#include "http/json_codec.hpp"

namespace catga::fuzz {

int fuzz_json_to_msgpack(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = as_view(data, size);
  auto packed = http::internal::json_to_msgpack(in);
  if (!packed) {
    FUZZ_CHECK(packed.error().code() == Code::invalid_argument);
    return 0;
  }
  detail::Unpacked h;
  FUZZ_CHECK(detail::unpack_one(*packed, DecodeLimits{}, h).has_value());
  std::string json;
  FUZZ_CHECK(http::internal::msgpack_to_json(*packed, json).has_value());
  auto again = http::internal::json_to_msgpack(json);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *packed);
  return 0;
}

}  // namespace catga::fuzz
