// catga/detail/slots.hpp — what the templates of catga/application.hpp
// instantiate per message and state type: the state cell, result encoding,
// the handler slots, and the few non-template functions through which they
// reach the in-process engine (the mediator, defined in src/core/mediator.hpp,
// which this header only declares).
//
// Internal (namespace catga::detail): not part of the API, may change in any
// release; user code never names it.
// Thread-safety: the slots are registered before the application starts and
// read-only afterwards. The state is guarded by `StateBase::mutex()`: commands
// hold it exclusively, queries shared. Callers of the `*_locked` functions
// hold the right lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "catga/export.hpp"
#include "catga/behavior.hpp"
#include "catga/codec.hpp"
#include "catga/context.hpp"
#include "catga/detail/snapshot_sink.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga::detail {

// ---------------------------------------------------------------- state

// The replicated state: the user's state plus what the library keeps beside
// it (the id counter). Snapshots encode both.
class CATGA_EXPORT StateBase {
 public:
  virtual ~StateBase() = default;
  std::shared_mutex& mutex() noexcept { return mutex_; }
  std::uint64_t& id_counter() noexcept { return ids_; }
  // Snapshot of user state + library state (caller holds at least a shared
  // lock, or is the only thread that writes the state).
  std::string snapshot() const;
  // The same bytes, streamed into `sink` (no copy of the encoding is held).
  void write_snapshot(SnapshotSink& sink) const;
  // Replaces everything (caller holds the exclusive lock). Unchanged on error.
  Result<void> restore(std::string_view bytes);
  // A state of the same type holding a default-constructed value, unshared:
  // a snapshot can be restored into it on any thread, then swapped in.
  virtual std::unique_ptr<StateBase> make_empty() const = 0;
  // Exchanges everything with `other`, made by make_empty() (caller holds
  // the exclusive lock on this one).
  void swap(StateBase& other) noexcept {
    swap_user(other);
    std::swap(ids_, other.ids_);
  }

 protected:
  virtual void encode_user(SnapshotSink& out) const = 0;
  virtual Result<void> decode_user(std::string_view bytes) = 0;
  virtual void swap_user(StateBase& other) noexcept = 0;

 private:
  mutable std::shared_mutex mutex_;
  std::uint64_t ids_ = 0;
};

template <class S>
class StateCell final : public StateBase {
 public:
  S value{};

  std::unique_ptr<StateBase> make_empty() const override { return std::make_unique<StateCell>(); }

 protected:
  void swap_user(StateBase& other) noexcept override {
    using std::swap;
    swap(value, static_cast<StateCell&>(other).value);
  }
  void encode_user(SnapshotSink& out) const override { msgpack::pack(out, value); }
  Result<void> decode_user(std::string_view bytes) override {
    // The node's own state, not a message from outside: the message limits
    // (64 MiB, 2^20 elements per container) would make a state that outgrew
    // them impossible to restore at start or to install on a follower.
    auto decoded = decode<S>(bytes, DecodeLimits{.max_bytes = SIZE_MAX, .max_array = SIZE_MAX, .max_map = SIZE_MAX,
                                                 .max_str = SIZE_MAX, .max_bin = SIZE_MAX});
    if (!decoded) return decoded.error();
    value = std::move(*decoded);
    return {};
  }
};

// ---------------------------------------------------------------- results

// Encoded Result<R>: msgpack array [code, value] on success (code 0) or
// [code, message] on error. What a replicated command's handler produced,
// recorded for retries and sent back to the proposer.
template <class R>
void encode_result(std::string& out, const Result<R>& result) {
  StringSink sink{&out};
  msgpack::packer<StringSink> packer(sink);
  packer.pack_array(2);
  if (!result) {
    packer.pack(static_cast<unsigned>(result.error().code()));
    packer.pack(result.error().message());
  } else {
    packer.pack(0u);
    if constexpr (std::is_void_v<R>) {
      packer.pack_nil();
    } else {
      packer.pack(*result);
    }
  }
}
CATGA_EXPORT void encode_error_result(std::string& out, const Error& error);

// Splits an encoded result into its code and its second element.
CATGA_EXPORT Result<void> decode_result_head(std::string_view bytes, detail::Unpacked& handle, Code& code,
                                const msgpack::object*& body);

template <class R>
Result<R> decode_result(std::string_view bytes) {
  detail::Unpacked handle;
  Code code{};
  const msgpack::object* body = nullptr;
  if (auto head = decode_result_head(bytes, handle, code, body); !head) return head.error();
  if (code != Code::ok) {
    std::string message;
    if (body->type == msgpack::type::STR) message.assign(body->via.str.ptr, body->via.str.size);
    return Error{code, std::move(message)};
  }
  if constexpr (std::is_void_v<R>) {
    return {};
  } else {
    try {
      R value{};
      body->convert(value);
      return value;
    } catch (const std::exception& e) {
      return conversion_error("result", e.what());
    }
  }
}

// ---------------------------------------------------------------- slots

class Mediator;

class CATGA_EXPORT Slot {
 public:
  Slot(MessageKind kind, std::string_view wire_name, std::size_t type) : kind_(kind), wire_name_(wire_name), type_(type) {}
  virtual ~Slot() = default;
  MessageKind kind() const noexcept { return kind_; }
  std::string_view wire_name() const noexcept { return wire_name_; }
  std::size_t type() const noexcept { return type_; }

 private:
  MessageKind kind_;
  std::string_view wire_name_;
  std::size_t type_;
};

// What `call_handler` does with an exception that is a failure of this node
// rather than an outcome of the message (see is_node_failure).
enum class NodeFailures : std::uint8_t {
  as_result,  // every exception becomes Code::internal (queries, events, in-memory commands)
  rethrow,    // node failures propagate (replicated commands: the node stops)
};

// Whether `e` is a failure of this node only, one another node running the
// same handler on the same state would not meet: std::bad_alloc (out of
// memory), std::system_error and its subclasses (the operating system said
// no), and anything not derived from std::exception (its origin is unknown).
// Every other std::exception (std::logic_error, std::runtime_error, …) is the
// handler's deterministic answer.
CATGA_EXPORT bool is_node_failure(const std::exception_ptr& e) noexcept;
// Code::internal naming the message and what was thrown.
CATGA_EXPORT Error handler_exception(std::string_view wire_name, const std::exception_ptr& e);

// Calls a handler that returns Result<R>, R, or (for R = void) nothing.
template <class R, NodeFailures policy = NodeFailures::as_result, class F, class... Args>
Result<R> call_handler(std::string_view wire_name, F& f, Args&&... args) noexcept(policy == NodeFailures::as_result) {
  try {
    using Ret = std::invoke_result_t<F&, Args...>;
    if constexpr (std::is_same_v<Ret, Result<R>>) {
      return f(std::forward<Args>(args)...);
    } else if constexpr (std::is_void_v<R> && std::is_void_v<Ret>) {
      f(std::forward<Args>(args)...);
      return {};
    } else {
      static_assert(std::is_convertible_v<Ret, Result<R>>,
                    "a handler must return Result<R> (or R) where R is the message's result type");
      return Result<R>(f(std::forward<Args>(args)...));
    }
  } catch (...) {
    if constexpr (policy == NodeFailures::rethrow) {
      if (is_node_failure(std::current_exception())) throw;
    }
    return handler_exception(wire_name, std::current_exception());
  }
}

class CommandSlotBase : public Slot {
 public:
  using Slot::Slot;
  // Decodes `payload`, runs the handler, appends the encoded Result to `out`.
  // Returns whether the handler succeeded. Caller holds the exclusive lock.
  virtual bool apply_encoded_locked(StateBase& state, std::string_view payload, CommandContext& ctx,
                                    std::string& out) = 0;
};

template <CommandMessage M>
class CommandSlot : public CommandSlotBase {
 public:
  using R = result_of<M>;
  CommandSlot() : CommandSlotBase(MessageKind::command, wire_name_of<M>, type_index<M>()) {}
  // Runs the handler; whatever it throws becomes Code::internal (in-memory).
  virtual Result<R> run_locked(StateBase& state, const M& command, CommandContext& ctx) noexcept = 0;
  // The same for a replicated command: a node failure (is_node_failure)
  // propagates instead, so that it never becomes a replicated result.
  virtual Result<R> apply_locked(StateBase& state, const M& command, CommandContext& ctx) = 0;

  bool apply_encoded_locked(StateBase& state, std::string_view payload, CommandContext& ctx,
                            std::string& out) final {
    auto command = decode<M>(payload);
    if (!command) {
      encode_result(out, Result<R>(Error{Code::invalid_argument, std::string(wire_name_of<M>) + ": " +
                                                                   command.error().message()}));
      return false;
    }
    Result<R> result = apply_locked(state, *command, ctx);
    encode_result(out, result);
    return result.has_value();
  }
};

template <class S, CommandMessage M, class F>
class CommandHandlerSlot final : public CommandSlot<M> {
 public:
  explicit CommandHandlerSlot(F f) : f_(std::move(f)) {}
  Result<result_of<M>> run_locked(StateBase& state, const M& command, CommandContext& ctx) noexcept override {
    return run<NodeFailures::as_result>(state, command, ctx);
  }
  Result<result_of<M>> apply_locked(StateBase& state, const M& command, CommandContext& ctx) override {
    return run<NodeFailures::rethrow>(state, command, ctx);
  }

 private:
  template <NodeFailures policy>
  Result<result_of<M>> run(StateBase& state, const M& command, CommandContext& ctx) noexcept(policy == NodeFailures::as_result) {
    S& value = static_cast<StateCell<S>&>(state).value;
    if constexpr (std::is_invocable_v<F&, S&, const M&, CommandContext&>) {
      return call_handler<result_of<M>, policy>(wire_name_of<M>, f_, value, command, ctx);
    } else {
      static_assert(std::is_invocable_v<F&, S&, const M&>,
                    "a command handler is callable as (State&, const Command&, CommandContext&) or (State&, const Command&)");
      return call_handler<result_of<M>, policy>(wire_name_of<M>, f_, value, command);
    }
  }

  F f_;
};

class QuerySlotBase : public Slot {
 public:
  using Slot::Slot;
  // Decodes `payload`, runs the handler, appends the encoded Result. Caller
  // holds at least a shared lock.
  virtual void query_encoded_locked(const StateBase& state, std::string_view payload, std::string& out) = 0;
};

template <QueryMessage Q>
class QuerySlot : public QuerySlotBase {
 public:
  using R = result_of<Q>;
  QuerySlot() : QuerySlotBase(MessageKind::query, wire_name_of<Q>, type_index<Q>()) {}
  virtual Result<R> run_locked(const StateBase& state, const Q& query) noexcept = 0;

  void query_encoded_locked(const StateBase& state, std::string_view payload, std::string& out) final {
    auto query = decode<Q>(payload);
    if (!query) {
      encode_result(out, Result<R>(Error{Code::invalid_argument,
                                         std::string(wire_name_of<Q>) + ": " + query.error().message()}));
      return;
    }
    encode_result(out, run_locked(state, *query));
  }
};

template <class S, QueryMessage Q, class F>
class QueryHandlerSlot final : public QuerySlot<Q> {
 public:
  explicit QueryHandlerSlot(F f) : f_(std::move(f)) {}
  Result<result_of<Q>> run_locked(const StateBase& state, const Q& query) noexcept override {
    static_assert(std::is_invocable_v<F&, const S&, const Q&>,
                  "a query handler is callable as (const State&, const Query&)");
    return call_handler<result_of<Q>>(wire_name_of<Q>, f_, static_cast<const StateCell<S>&>(state).value, query);
  }

 private:
  F f_;
};

class EventSlotBase : public Slot {
 public:
  using Slot::Slot;
  virtual void deliver_encoded(Mediator& mediator, std::string_view payload, const EventInfo& info) = 0;
};

template <EventMessage E>
class EventSlot final : public EventSlotBase {
 public:
  using Handler = UniqueFunction<Result<void>(const E&, const EventInfo&)>;
  EventSlot() : EventSlotBase(MessageKind::event, wire_name_of<E>, type_index<E>()) {}

  template <class F>
  void add(F f, Delivery delivery) {
    handlers_.push_back({[f = std::move(f)](const E& e, const EventInfo& info) mutable -> Result<void> {
                           if constexpr (std::is_invocable_v<F&, const E&, const EventInfo&>) {
                             return call_handler<void>(wire_name_of<E>, f, e, info);
                           } else {
                             static_assert(std::is_invocable_v<F&, const E&>,
                                           "an event handler is callable as (const Event&, const EventContext&) or (const Event&)");
                             return call_handler<void>(wire_name_of<E>, f, e);
                           }
                         },
                         delivery});
  }
  // Runs every handler that applies here; failures are isolated and reported.
  void deliver(Mediator& mediator, const E& event, const EventInfo& info);
  void deliver_encoded(Mediator& mediator, std::string_view payload, const EventInfo& info) override;

 private:
  struct Entry {
    Handler handler;
    Delivery delivery;
  };
  std::vector<Entry> handlers_;
};

// ---------------------------------------------------------------- engine doors

// The in-process engine (src/core/mediator.hpp): the registry of slots, the
// behaviours, the restore hooks and the state. The templates reach it only
// through the functions below, implemented in src/core/mediator.cc.

// ---- registration (before start) ----
// Fails on a second handler for the same command/query or a wire name used
// by two different types. On success returns the registered slot.
CATGA_EXPORT Result<Slot*> add_slot(Mediator& mediator, std::unique_ptr<Slot> slot);
CATGA_EXPORT void add_behavior(Mediator& mediator, std::unique_ptr<Behavior> behavior);
// Called with the state right after a snapshot replaced it (see
// ApplicationBuilder::on_restore).
using RestoreHook = UniqueFunction<Result<void>(const StateBase&)>;
CATGA_EXPORT void add_restore_hook(Mediator& mediator, RestoreHook hook);

// ---- lookup ----
// The slot registered for the message type with this type_index, or nullptr.
CATGA_EXPORT Slot* find_slot(const Mediator& mediator, std::size_t type) noexcept;
// The slot registered for M (CommandSlot<M>, QuerySlot<M> or EventSlot<M>), or nullptr.
template <Message M>
auto* slot_of(const Mediator& mediator) noexcept {
  Slot* found = find_slot(mediator, type_index<M>());
  if constexpr (CommandMessage<M>) {
    return static_cast<CommandSlot<M>*>(found);
  } else if constexpr (QueryMessage<M>) {
    return static_cast<QuerySlot<M>*>(found);
  } else {
    return static_cast<EventSlot<M>*>(found);
  }
}
// Code::unimplemented naming the message.
CATGA_EXPORT Error no_handler(std::string_view wire_name, MessageKind kind);

// ---- behaviours ----
CATGA_EXPORT bool has_behaviors(const Mediator& mediator) noexcept;
// Runs the behaviours for `request`. On success `observers` holds the
// observers to call (in reverse) when the request completes; on rejection
// they have already been called with the error.
CATGA_EXPORT Result<void> run_behaviors(Mediator& mediator, Request& request, std::vector<Observer>& observers);
// Calls the observers in reverse with `outcome` and empties the list.
CATGA_EXPORT void notify(std::vector<Observer>& observers, const Result<void>& outcome) noexcept;

// ---- events ----
// Counts `count` events delivered to handlers that succeeded.
CATGA_EXPORT void count_events_delivered(Mediator& mediator, std::uint64_t count) noexcept;
// Logs and counts an event a handler failed on (or that did not decode).
CATGA_EXPORT void report_event_failure(Mediator& mediator, std::string_view wire_name, const Error& error) noexcept;
template <EventMessage E>
void deliver_event(Mediator& mediator, const E& event, const EventInfo& info) noexcept {
  if (auto* s = slot_of<E>(mediator)) s->deliver(mediator, event, info);
}

// ---- in-memory execution (no cluster) ----
// The last index an in-memory command applied at (any thread).
CATGA_EXPORT std::uint64_t local_index(const Mediator& mediator) noexcept;

// One in-memory command, around the typed handler call: the constructor
// takes the state's exclusive lock, numbers the command and makes its
// context; the destructor unlocks and then delivers the events the handler
// raised if it succeeded (see succeeded()), else drops them.
class CATGA_EXPORT LocalCommand {
 public:
  // `index_out` (optional) receives the index the command applies at.
  LocalCommand(Mediator& mediator, std::uint64_t* index_out) noexcept;
  ~LocalCommand();
  LocalCommand(const LocalCommand&) = delete;
  LocalCommand& operator=(const LocalCommand&) = delete;

  StateBase& state() noexcept { return state_; }
  CommandContext& context() noexcept { return ctx_; }
  void succeeded(bool ok) noexcept { ok_ = ok; }

 private:
  Mediator& mediator_;
  StateBase& state_;
  CommandContext ctx_;
  bool ok_ = false;
};

// The state the mediator holds (for a local query, under its shared lock).
CATGA_EXPORT StateBase& state_of(Mediator& mediator) noexcept;

template <CommandMessage M>
Result<result_of<M>> run_local(Mediator& mediator, CommandSlot<M>& slot, const M& command,
                               std::uint64_t* index_out = nullptr) noexcept {
  LocalCommand run(mediator, index_out);
  Result<result_of<M>> result = slot.run_locked(run.state(), command, run.context());
  run.succeeded(result.has_value());
  return result;
}

template <QueryMessage Q>
Result<result_of<Q>> run_query(Mediator& mediator, QuerySlot<Q>& slot, const Q& query) noexcept {
  StateBase& state = state_of(mediator);
  std::shared_lock lock(state.mutex());
  return slot.run_locked(state, query);
}

template <EventMessage E>
void EventSlot<E>::deliver(Mediator& mediator, const E& event, const EventInfo& info) {
  std::uint64_t delivered = 0;
  for (auto& entry : handlers_) {
    if (entry.delivery == Delivery::leader_only && !info.leader) continue;
    if (Result<void> r = entry.handler(event, info)) ++delivered;
    else report_event_failure(mediator, wire_name_of<E>, r.error());
  }
  if (delivered != 0) count_events_delivered(mediator, delivered);
}

template <EventMessage E>
void EventSlot<E>::deliver_encoded(Mediator& mediator, std::string_view payload, const EventInfo& info) {
  auto event = decode<E>(payload);
  if (!event) {
    report_event_failure(mediator, wire_name_of<E>, event.error());
    return;
  }
  deliver(mediator, *event, info);
}

}  // namespace catga::detail

namespace catga::detail {
template <EventMessage E>
void TypedPendingEvent<E>::deliver(Mediator& mediator, const EventInfo& info) {
  deliver_event(mediator, event, info);
}
}  // namespace catga::detail
