// Request accessors and the options a request carries for the mediator.
#include <algorithm>
#include <cctype>
#include <charconv>

#include "catga/http.hpp"
#include "http/json_codec.hpp"
#include "http/transport_access.hpp"

namespace catga::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// application/json, application/problem+json, ...; parameters (charset) ignored.
bool is_json_media_type(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  if (iequals(type, "application/json")) return true;
  return type.size() > 5 && iequals(type.substr(0, 12), "application/") && iequals(type.substr(type.size() - 5), "+json");
}

}  // namespace

std::string_view to_string(Method method) noexcept {
  switch (method) {
    case Method::get: return "GET";
    case Method::head: return "HEAD";
    case Method::post: return "POST";
    case Method::put: return "PUT";
    case Method::patch: return "PATCH";
    case Method::del: return "DELETE";
  }
  return "?";
}

Request::Request(internal::RequestParts parts)
    : method_(parts.method),
      path_(parts.path),
      route_(parts.route),
      params_(std::move(parts.params)),
      query_(std::move(parts.query)),
      headers_(std::move(parts.headers)),
      body_(parts.body),
      principal_(std::move(parts.principal)) {}

std::string_view Request::param(std::string_view name) const noexcept {
  for (const auto& [key, value] : params_) {
    if (key == name) return value;
  }
  return {};
}

std::optional<std::string_view> Request::query(std::string_view name) const noexcept {
  for (const auto& [key, value] : query_) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  for (const auto& [key, value] : headers_) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

Error Request::fail(int status, Error error) const {
  if (!failure_) failure_ = Failure{status, error};
  return error;
}

Result<std::string> Request::json_as_msgpack() const {
  auto content_type = header("Content-Type");
  if (body_.empty() && !content_type) return std::string(1, '\x80');  // {} as MessagePack
  if (!content_type || !is_json_media_type(*content_type)) {
    return fail(415, Error{Code::invalid_argument,
                           "the body must be JSON (Content-Type: application/json), got " +
                               (content_type ? "\"" + std::string(*content_type) + "\"" : std::string("no Content-Type"))});
  }
  if (body_.empty()) return std::string(1, '\x80');
  auto converted = internal::json_to_msgpack(body_);
  if (!converted) return fail(400, std::move(converted).error());
  return converted;
}

namespace detail {

Error parse_error(std::string_view what, std::string_view name, std::string_view text, std::string_view expected) {
  return Error{Code::invalid_argument, std::string(what) + " '" + std::string(name) + "' must be " +
                                           std::string(expected) + ", got \"" + std::string(text) + "\""};
}

// The caller's W3C `traceparent`. A malformed one is ignored, as the
// specification asks: the request runs, under a new trace if a tracing
// behaviour starts one.
static TraceContext trace_parent(const Request& request) {
  auto header = request.header("traceparent");
  if (!header) return {};
  return TraceContext::from_traceparent(*header).value_or(TraceContext{});
}

std::optional<CommandOptions> command_options(const Request& request, std::chrono::milliseconds timeout) {
  CommandOptions options;
  options.timeout = timeout;
  options.principal = request.principal();
  options.trace_parent = trace_parent(request);
  if (auto key = request.header(kIdempotencyKeyHeader)) {
    constexpr std::size_t kMaxKey = 256;  // what a replicated envelope carries
    const bool printable = std::all_of(key->begin(), key->end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
    if (key->empty() || key->size() > kMaxKey || !printable) {
      request.fail(400, Error{Code::invalid_argument, "Idempotency-Key must be 1 to 256 visible ASCII characters"});
      return std::nullopt;
    }
    options.idempotency_key = std::string(*key);
  }
  return options;
}

std::optional<QueryOptions> query_options(const Request& request, Consistency fallback, std::chrono::milliseconds timeout) {
  QueryOptions options;
  options.timeout = timeout;
  options.principal = request.principal();
  options.trace_parent = trace_parent(request);
  options.consistency = fallback;
  std::optional<std::uint64_t> min_index = request.query<std::uint64_t>("min_index");
  if (request.failure()) return std::nullopt;
  if (!min_index) {
    if (auto header = request.header(kMinIndexHeader)) {
      std::uint64_t value = 0;
      auto [ptr, ec] = std::from_chars(header->data(), header->data() + header->size(), value);
      if (header->empty() || ec != std::errc() || ptr != header->data() + header->size()) {
        request.fail(400, parse_error("header", kMinIndexHeader, *header, "an integer in range"));
        return std::nullopt;
      }
      min_index = value;
    }
  }
  if (min_index) {
    options.min_index = *min_index;
    options.consistency = Consistency::read_your_writes;
  }
  if (auto consistency = request.query("consistency")) {
    if (*consistency == "local") options.consistency = Consistency::local;
    else if (*consistency == "read_your_writes") options.consistency = Consistency::read_your_writes;
    else if (*consistency == "linearizable") options.consistency = Consistency::linearizable;
    else {
      request.fail(400, parse_error("query parameter", "consistency", *consistency,
                                    "local, read_your_writes or linearizable"));
      return std::nullopt;
    }
  }
  return options;
}

Headers index_headers(std::uint64_t index) {
  Headers headers;
  if (index != 0) headers.emplace_back(std::string(kIndexHeader), std::to_string(index));
  return headers;
}

}  // namespace detail
}  // namespace catga::http
