// What the Server keeps behind its pimpl, shared by the RESTinio translation
// unit (server.cc) and the operational endpoints (operations.cc). No RESTinio
// here: the transport is an opaque `Core` defined in server.cc.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "catga/http.hpp"
#include "http/credentials.hpp"
#include "http/prometheus.hpp"
#include "http/router.hpp"

namespace catga::http::internal {

// The server's own series: requests by route and status, latency by route.
// Sized once at start (one entry per route plus one for unmatched requests);
// recording is lock-free.
class HttpStats {
 public:
  // Statuses counted individually; others go under "other".
  static constexpr std::array<int, 18> kStatuses = {200, 201, 202, 204, 400, 401, 403, 404, 405,
                                                    409, 413, 415, 429, 499, 500, 501, 503, 504};

  explicit HttpStats(const Router& router);
  std::size_t unmatched() const noexcept { return routes_.size() - 1; }
  void record(std::size_t route, int status, std::chrono::nanoseconds latency) noexcept;
  void render(std::string& out) const;

 private:
  struct RouteSeries {
    std::string method;
    std::string pattern;
    std::array<std::atomic<std::uint64_t>, kStatuses.size() + 1> by_status{};
    LatencyHistogram latency;
  };
  std::vector<std::unique_ptr<RouteSeries>> routes_;
};

struct Core;  // the RESTinio server, its io_context and threads (server.cc)

}  // namespace catga::http::internal

namespace catga::http::internal {

struct ServerImpl {
  Router router;
  std::vector<Error> errors;       // registration errors, reported by start()
  bool cluster_admin = false;      // map_cluster_admin() was called
  bool message_endpoints = false;  // map_message_endpoints() was called
  std::atomic<std::uint16_t> port{0};
  std::shared_ptr<HttpStats> stats;  // from start() on
  std::shared_ptr<Core> core;        // while started
  Credentials credentials;           // ServerOptions::credentials_file
  FileStamps stamps;                 // reload checks (the I/O threads, one at a time)
};

}  // namespace catga::http::internal
