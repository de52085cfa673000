// catgactl's HTTP/1.1 client: one request per connection (Connection: close),
// over TCP or TLS (1.2+, the server verified against --cacert or the system's
// CAs, its name or IP checked; --cert/--key present a client certificate),
// bounded by a deadline for connect, handshake, write and read together.
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
  bool tls = false;
  std::string text() const { return (tls ? "https://" : "") + host + ":" + port; }
};

// "HOST:PORT", "http://HOST:PORT[/]" or "https://HOST:PORT[/]"; a bare
// HOST:PORT is https when `default_tls`.
catga::Result<Endpoint> parse_endpoint(std::string_view text, bool default_tls = false);
// A comma-separated list of them.
catga::Result<std::vector<Endpoint>> parse_endpoints(std::string_view list, bool default_tls = false);

// PEM files for https endpoints.
struct TlsFiles {
  std::string ca;           // trusted for the server (empty: the system's CAs)
  std::string certificate;  // a client certificate, with `key`
  std::string key;
};

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
// invalid_argument when a TLS file cannot be used.
catga::Result<Response> request(const Endpoint& endpoint, const Call& call, std::chrono::milliseconds timeout,
                                const TlsFiles& tls = {});

}  // namespace catgactl
