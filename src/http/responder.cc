// Responder: the one place where results and errors become HTTP responses.
#include "catga/http.hpp"
#include "cluster/node_stopped.hpp"
#include "http/json_codec.hpp"
#include "http/transport_access.hpp"

namespace catga::http {

int status_for(Code code) noexcept {
  switch (code) {
    case Code::ok: return 200;
    case Code::invalid_argument:
    case Code::out_of_range: return 400;
    case Code::unauthenticated: return 401;
    case Code::permission_denied: return 403;
    case Code::not_found: return 404;
    case Code::already_exists:
    case Code::failed_precondition:
    case Code::aborted: return 409;
    case Code::resource_exhausted: return 429;
    case Code::cancelled: return 499;
    case Code::unimplemented: return 501;
    case Code::unavailable: return 503;
    case Code::deadline_exceeded: return 504;
    case Code::unknown:
    case Code::internal:
    case Code::data_loss: return 500;
  }
  return 500;
}

Responder::Responder(std::unique_ptr<internal::PendingResponse> pending) noexcept : pending_(std::move(pending)) {}
Responder::Responder(Responder&&) noexcept = default;
Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (pending_) error(Error{Code::internal, "the handler replaced its response without answering"});
    pending_ = std::move(other.pending_);
  }
  return *this;
}

Responder::~Responder() {
  if (pending_) error(Error{Code::internal, "the handler did not respond"});
}

void Responder::send(int status, std::string body, std::string_view content_type, Headers headers) {
  if (!pending_) return;  // answered already: a second answer is ignored
  auto pending = std::move(pending_);
  pending->send(status, std::move(body), content_type, std::move(headers));
}

void Responder::json(int status, std::string json_text, Headers headers) {
  send(status, std::move(json_text), "application/json", std::move(headers));
}

void Responder::empty(int status, Headers headers) { send(status, {}, {}, std::move(headers)); }

void Responder::msgpack_as_json(int status, std::string_view msgpack_value, Headers headers) {
  std::string body;
  if (auto rendered = internal::msgpack_to_json(msgpack_value, body); !rendered) {
    return error(Error{Code::internal, "cannot render the result as JSON: " + rendered.error().message()},
                 std::move(headers));
  }
  json(status, std::move(body), std::move(headers));
}

void Responder::error(const Error& error, Headers headers, int status) {
  // A node that stopped itself: the request was fine, this node cannot serve
  // it; 503 sends clients and load balancers elsewhere (409 would read as a
  // statement about the request). The body keeps the error's own code.
  const bool stopped = catga::internal::is_node_stopped_itself(error);
  if (error.code() == Code::unavailable || stopped) headers.emplace_back("Retry-After", "1");
  if (stopped && status == 0) status = 503;
  json(status ? status : status_for(error.code()), internal::error_json(error), std::move(headers));
}

}  // namespace catga::http
