// catga/context.hpp — what a handler may know about the moment it runs.
//
// COMMAND HANDLERS MUST BE DETERMINISTIC. In a cluster every node runs the same
// command handler on the same state, in log order, and must reach the same
// result. A command handler may read only its state, its command and its
// `CommandContext`: no clocks, no random numbers, no I/O, no global mutable
// state, no iteration over unordered containers whose order may differ. Take
// the time from `ctx.time()` (stamped once by the leader) and ids from
// `ctx.new_id()` (a replicated counter).
//
// FAILING. A command handler's result — a returned `Error`, or an exception
// derived from std::exception (std::invalid_argument, std::out_of_range,
// std::logic_error, std::runtime_error, …), which becomes `Code::internal` —
// is recorded as the command's result on every node, so it must be as
// deterministic as a success (fail before changing the state: nothing is
// rolled back). Failures that may happen on one node only are never recorded:
// std::bad_alloc, std::system_error and its subclasses, and any exception not
// derived from std::exception make that node stop itself (a leader stops
// leading; the others elect a new one and hold the command's real result).
// Do not use them for business errors.
//
// `CommandContext` lives for one handler call, on the thread applying the
// command (the Raft loop thread in a cluster); do not keep references to it.
// Events given to `publish` are delivered to event handlers after the command
// has applied, on every node — and only if the handler returned success.
//
// `EventContext` tells an event handler where and when the event happened.
//
// `Principal` is who sent a request, as the edge that received it
// authenticated the caller (an HTTP bearer token or TLS client certificate).
// Pipeline behaviours see it (`Request::principal()`, behavior.hpp) and may
// allow or deny per message. It never reaches command handlers: they run on
// every node and must not depend on who asked.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catga/message.hpp"

namespace catga {

struct EventInfo;

namespace detail {
class Mediator;
// An event raised inside a command handler, waiting for the command to apply.
struct PendingEvent {
  virtual ~PendingEvent() = default;
  virtual void deliver(Mediator& mediator, const EventInfo& info) = 0;
};
template <EventMessage E>
struct TypedPendingEvent final : PendingEvent {
  explicit TypedPendingEvent(E e) : event(std::move(e)) {}
  void deliver(Mediator& mediator, const EventInfo& info) override;
  E event;
};
}  // namespace detail

namespace internal {
struct CommandContextAccess;
}  // namespace internal

using Timestamp = std::chrono::system_clock::time_point;

// An authenticated caller. Immutable once made; shared by every request of a
// connection or token (`std::shared_ptr<const Principal>`).
struct Principal {
  std::string name;                // e.g. "alice", or a certificate's subject CN
  std::vector<std::string> roles;  // e.g. {"reader"}, {"writer"}
  std::string authenticated_by;    // "token" or "certificate"

  bool has_role(std::string_view role) const noexcept {
    return std::find(roles.begin(), roles.end(), role) != roles.end();
  }
};

class CommandContext {
 public:
  // Raft log index of the entry carrying this command (in-memory mode: a
  // per-application counter). Several commands may share one index.
  std::uint64_t index() const noexcept { return index_; }
  // Raft term of that entry (in-memory mode: 1).
  std::uint64_t term() const noexcept { return term_; }
  // The leader's wall clock when it replicated the command: identical on
  // every node. Use it instead of any clock.
  Timestamp time() const noexcept { return time_; }
  // A new id, unique for the lifetime of the replicated state (1, 2, 3, …):
  // every node hands out the same ids in the same order.
  std::uint64_t new_id() noexcept { return ++*id_counter_; }

  // Raises an event, delivered after the command applied (if it succeeded).
  template <EventMessage E>
  void publish(E event) {
    events_.push_back(std::make_unique<detail::TypedPendingEvent<E>>(std::move(event)));
  }

 private:
  // Made by the engine that applies commands: the mediator in memory, the
  // replicated state machine through internal::CommandContextAccess
  // (src/core/context_access.hpp).
  friend class detail::Mediator;
  friend struct internal::CommandContextAccess;
  CommandContext(std::uint64_t index, std::uint64_t term, Timestamp time, std::uint64_t* id_counter) noexcept
      : index_(index), term_(term), time_(time), id_counter_(id_counter) {}
  std::vector<std::unique_ptr<detail::PendingEvent>>& pending_events() noexcept { return events_; }

  std::uint64_t index_;
  std::uint64_t term_;
  Timestamp time_;
  std::uint64_t* id_counter_;
  std::vector<std::unique_ptr<detail::PendingEvent>> events_;
};

// Where an event handler runs.
enum class Delivery : std::uint8_t {
  every_node,   // on every node (read models, caches) — the default
  leader_only,  // once, on whichever node leads when the event applies (external side effects)
};

// Where and when an event happened; identical on every node except `leader`
// and `replay`.
struct EventInfo {
  std::uint64_t index = 0;  // log index of the entry that produced it
  std::uint64_t term = 0;
  Timestamp time{};         // leader-stamped
  bool leader = true;       // this node led when it applied the entry
  // The entry was already in this node's log when the node started: it may
  // have been delivered before the restart (delivery is at-least-once).
  // Entries covered by a snapshot (loaded at start or installed from the
  // leader) are not delivered at all: ApplicationBuilder::on_restore hooks
  // get the state instead.
  bool replay = false;
};
using EventContext = EventInfo;

}  // namespace catga
