#include "http/json_codec.hpp"

#include <nlohmann/json.hpp>

#include "catga/codec.hpp"

namespace catga::http::internal {
namespace {

using nlohmann::json;

Error json_error(std::string message) { return Error{Code::invalid_argument, "malformed JSON: " + std::move(message)}; }

// The parser recurses per nesting level: refuse deep documents before parsing.
Result<void> check_depth(std::string_view text) {
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return json_error("nesting deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return {};
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                 static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Result<json> to_json(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return json(nullptr);
    case msgpack::type::BOOLEAN:
      return json(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      return json(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return json(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return json(o.via.f64);
    case msgpack::type::STR:
      return json(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN:
      return json(base64(std::string_view(o.via.bin.ptr, o.via.bin.size)));
    case msgpack::type::ARRAY: {
      json array = json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        auto element = to_json(o.via.array.ptr[i]);
        if (!element) return element;
        array.push_back(std::move(*element));
      }
      return array;
    }
    case msgpack::type::MAP: {
      json object = json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        auto value = to_json(kv.val);
        if (!value) return value;
        std::string key;
        if (kv.key.type == msgpack::type::STR) {
          key.assign(kv.key.via.str.ptr, kv.key.via.str.size);
        } else {
          auto k = to_json(kv.key);
          if (!k) return k;
          key = k->is_string() ? k->get<std::string>() : dump(*k);
        }
        object[key] = std::move(*value);
      }
      return object;
    }
    default:
      return Error{Code::internal, "a MessagePack extension value has no JSON form"};
  }
}

}  // namespace

Result<std::string> json_to_msgpack(std::string_view text) {
  if (auto depth = check_depth(text); !depth) return depth.error();
  try {
    json document = json::parse(text.begin(), text.end());
    std::string out;
    json::to_msgpack(document, nlohmann::detail::output_adapter<char, std::string>(out));
    return out;
  } catch (const json::exception& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
    if (auto bracket = what.find("] "); what.starts_with("[json.exception") && bracket != std::string::npos) {
      what.erase(0, bracket + 2);
    }
    return json_error(std::move(what));
  }
}

Result<void> msgpack_object_to_json(const msgpack::object& value, std::string& out) {
  auto j = to_json(value);
  if (!j) return j.error();
  out += dump(*j);
  return {};
}

Result<void> msgpack_to_json(std::string_view msgpack_value, std::string& out) {
  catga::detail::Unpacked handle;
  if (auto unpacked = catga::detail::unpack_one(msgpack_value, DecodeLimits{}, handle); !unpacked) {
    return unpacked.error();
  }
  return msgpack_object_to_json(handle.get(), out);
}

std::string json_quote(std::string_view text) { return dump(json(std::string(text))); }

std::string error_json(const Error& error) {
  return "{\"error\":{\"code\":" + json_quote(to_string(error.code())) + ",\"message\":" + json_quote(error.message()) +
         "}}";
}

}  // namespace catga::http::internal
