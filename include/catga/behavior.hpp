// catga/behavior.hpp — pipeline behaviours: code that wraps every `send` and
// `publish` on the node where it was called (logging, validation, metrics,
// deadlines, authorization).
//
// A behaviour is one method, `handle(request, next)`. It runs before the
// request goes anywhere (before a command is proposed to Raft — never inside
// apply, never on other nodes) and must, before returning, do exactly one of:
//   next();                     continue down the pipeline;
//   next(observer);             continue, and have `observer(outcome)` called
//                               with the outcome once the request completes;
//   next.reject(error);         short-circuit: the caller gets `error`.
// Behaviours run in registration order; observers run in reverse order, on
// whichever thread completes the request (the caller's thread for local work,
// the cluster's loop thread for replicated commands) — keep them short.
//
// Behaviours are shared by all threads that call `send`: make `handle`
// thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>

#include "catga/export.hpp"
#include "catga/context.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"
#include "catga/tracing.hpp"

namespace catga {

namespace detail {
class Mediator;
CATGA_EXPORT std::size_t next_type_index() noexcept;
// A dense index per message type, assigned on first use in the process.
template <class M>
std::size_t type_index() noexcept {
  static const std::size_t index = next_type_index();
  return index;
}
}  // namespace detail

// What a behaviour sees of a request.
class Request {
 public:
  template <Message M>
  explicit Request(const M& message) noexcept
      : message_(&message),
        type_(detail::type_index<M>()),
        wire_name_(wire_name_of<M>),
        kind_(M::catga_message::kind) {}

  std::string_view wire_name() const noexcept { return wire_name_; }
  MessageKind kind() const noexcept { return kind_; }
  // The message, if it is an M; nullptr otherwise.
  template <Message M>
  const M* as() const noexcept {
    return type_ == detail::type_index<M>() ? static_cast<const M*>(message_) : nullptr;
  }
  // A deadline for the whole request (a cluster stops retrying at it).
  std::optional<std::chrono::steady_clock::time_point> deadline() const noexcept { return deadline_; }
  void set_deadline(std::chrono::steady_clock::time_point deadline) noexcept { deadline_ = deadline; }
  // Who sent the request (CommandOptions/QueryOptions::principal), or nullptr
  // when the caller is anonymous (a direct call, or HTTP without credentials).
  const Principal* principal() const noexcept { return principal_; }
  void set_principal(const Principal* principal) noexcept { principal_ = principal; }
  // The W3C trace context the request travels under: on entry the caller's
  // (CommandOptions/QueryOptions::trace_parent, an HTTP `traceparent`), or
  // invalid. A tracing behaviour replaces it with its own span's context; a
  // replicated command carries the final value to the leader (tracing.hpp).
  const TraceContext& trace_context() const noexcept { return trace_; }
  void set_trace_context(const TraceContext& trace) noexcept { trace_ = trace; }

 private:
  const void* message_;
  std::size_t type_;
  std::string_view wire_name_;
  MessageKind kind_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  const Principal* principal_ = nullptr;
  TraceContext trace_;
};

// Sees the outcome of a request: success, or the error the caller gets.
using Observer = detail::UniqueFunction<void(const Result<void>& outcome)>;

class Next {
 public:
  void operator()() noexcept { state_ = State::continued; }
  void operator()(Observer observer) noexcept {
    state_ = State::continued;
    observer_ = std::move(observer);
  }
  void reject(Error error) {
    state_ = State::rejected;
    error_ = std::move(error);
  }

 private:
  // The mediator reads what the behaviour decided (src/core/mediator.cc).
  friend class detail::Mediator;
  enum class State : unsigned char { undecided, continued, rejected };
  State state() const noexcept { return state_; }
  Observer& observer() noexcept { return observer_; }
  Error& error() noexcept { return error_; }

  State state_ = State::undecided;
  Observer observer_;
  Error error_;
};

class CATGA_EXPORT Behavior {
 public:
  virtual ~Behavior() = default;
  virtual void handle(Request& request, Next& next) = 0;
};

}  // namespace catga
