// JSON <-> MessagePack at the HTTP edge. Messages and results are declared
// once with MSGPACK_DEFINE_MAP; JSON bodies are converted to MessagePack and
// decoded by the codec, results are encoded by the codec and rendered as JSON.
//
// Hostile input is bounded: JSON nesting deeper than `kMaxJsonDepth` is
// refused before parsing (the parser recurses), MessagePack is unpacked with
// the codec's DecodeLimits. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "catga/codec.hpp"
#include "catga/result.hpp"

namespace catga::http::internal {

inline constexpr std::size_t kMaxJsonDepth = 64;

// invalid_argument with the parser's message for malformed or too deeply
// nested JSON.
Result<std::string> json_to_msgpack(std::string_view json);

// Appends the JSON rendering of one MessagePack value. Map keys that are not
// strings are rendered as their JSON text ("7"), binary as base64. Errors:
// invalid_argument for bytes that are not one MessagePack value.
Result<void> msgpack_to_json(std::string_view msgpack_value, std::string& out);
Result<void> msgpack_object_to_json(const msgpack::object& value, std::string& out);

// {"error": {"code": "not_found", "message": "..."}}
std::string error_json(const Error& error);

// A string as a JSON string literal (quotes included, invalid UTF-8 replaced).
std::string json_quote(std::string_view text);

}  // namespace catga::http::internal
