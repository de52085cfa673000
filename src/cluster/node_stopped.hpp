// What a node that stopped itself (disk failure, a handler's bad_alloc, ...)
// answers to new work, and how the HTTP edge recognises that answer.
//
// The code is failed_precondition, so that the node's own retrier never
// retries on it and the peers it forwards for retry elsewhere (they get
// unavailable over the peer channel). Over HTTP the same error is a 503 with
// Retry-After: the request was fine, this node cannot serve it; a client or
// load balancer sends it to another node (docs/http.md, "Status codes").
// Header-only: included by catga::cluster, which makes the error, and by
// catga::http, which maps it.
#pragma once

#include <string>
#include <string_view>

#include "catga/result.hpp"

namespace catga::internal {

inline constexpr std::string_view kNodeStoppedPrefix = "node stopped: ";

// failed_precondition "node stopped: <failure>" (not retryable on this node).
inline Error node_stopped_itself(const std::string& failure) {
  return Error(Code::failed_precondition, std::string(kNodeStoppedPrefix) + failure);
}

// True for the error node_stopped_itself makes.
inline bool is_node_stopped_itself(const Error& error) {
  return error.code() == Code::failed_precondition && error.message().starts_with(kNodeStoppedPrefix);
}

}  // namespace catga::internal
