// catgactl's HTTP/1.1 client: one request per connection (Connection: close),
// plain TCP, bounded by a deadline for connect, write and read together.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catga/result.hpp"

namespace catgactl {

struct Endpoint {
  std::string host;
  std::string port;
  std::string text() const { return host + ":" + port; }
};

// "HOST:PORT" or "http://HOST:PORT[/]". https:// is refused (no TLS here).
catga::Result<Endpoint> parse_endpoint(std::string_view text);
// A comma-separated list of them.
catga::Result<std::vector<Endpoint>> parse_endpoints(std::string_view list);

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string header(std::string_view name) const;  // "" if absent (case-insensitive)
};

struct Call {
  std::string method = "GET";
  std::string path;
  std::string body;   // sent as application/json when not empty
  std::string token;  // Authorization: Bearer, when not empty
};

// unavailable when the endpoint cannot be reached or answers garbage;
// deadline_exceeded when `timeout` passes first.
catga::Result<Response> request(const Endpoint& endpoint, const Call& call, std::chrono::milliseconds timeout);

}  // namespace catgactl
