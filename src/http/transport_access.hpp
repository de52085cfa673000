// What the transport (server.cc) needs of the public Request and Responder:
// the parts of a request it parsed from the wire, the one response it owes,
// and the doors to their private constructors. Never part of the public API.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catga/detail/unique_function.hpp"
#include "catga/http.hpp"

namespace catga::http::internal {

// One request as received. The views point into the transport's buffers,
// which outlive the Request made from them (it lives for one handler call).
struct RequestParts {
  Method method = Method::get;
  std::string_view path;
  std::string_view route;
  std::vector<std::pair<std::string_view, std::string>> params;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;
  std::shared_ptr<const Principal> principal;
};

struct RequestAccess {
  static Request make(RequestParts parts) { return Request(std::move(parts)); }
};

// Implemented by the transport: writes one response, from any thread.
class PendingResponse {
 public:
  virtual ~PendingResponse() = default;
  virtual void send(int status, std::string body, std::string_view content_type, Headers headers) noexcept = 0;
  // Runs `f` on a server thread after `delay` — or never, if the server stops
  // first; false when the transport has no timers (then never). `f` may
  // outlive this response: it must not refer to it.
  virtual bool after(std::chrono::milliseconds /*delay*/, catga::detail::UniqueFunction<void()> /*f*/) {
    return false;
  }
};

struct ResponderAccess {
  static Responder make(std::unique_ptr<PendingResponse> pending) noexcept { return Responder(std::move(pending)); }
  // The response `responder` owes; null once it answered.
  static PendingResponse* pending(Responder& responder) noexcept { return responder.pending_.get(); }
};

}  // namespace catga::http::internal
