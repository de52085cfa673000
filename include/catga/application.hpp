// catga/application.hpp — the service: register handlers on an
// `ApplicationBuilder<State>`, build it, and `send` commands and queries and
// `publish` events through the resulting `Application`.
//
//   catga::ApplicationBuilder<OrderBook> builder;
//   builder.command<CreateOrder>(create_order)      // (OrderBook&, const CreateOrder&, CommandContext&)
//          .query<GetOrder>(get_order)              // (const OrderBook&, const GetOrder&)
//          .on<OrderCreated>(update_read_model)     // (const OrderCreated&, const EventContext&)
//          .on_restore(rebuild_read_model);         // (const OrderBook&): after a snapshot replaced it
//   builder.cluster({.node_id = 1, .members = {...}, .data_dir = "data/1"});  // the one block
//   auto app = builder.build();                     // Result<std::unique_ptr<Application>>
//   Result<Order> order = (*app)->send(CreateOrder{.product_id = "p1", .quantity = 2});
//
// Where the state lives is one choice on the builder; handlers and call sites
// never change:
//   (nothing)        a single durable node: a 1-member Raft log in
//                    `./catga-data` — a restart keeps the state;
//   data_dir(path)   the same, in `path`;
//   cluster(opts)    a member of a replicated Raft cluster: commands go through
//                    the leader's log and apply on every node;
//   in_memory()      no log, no disk: commands apply directly (tests, benchmarks).
//
// Every call comes in two shapes: blocking (`send(msg)` returns the Result) and
// callback (`send(msg, options, done)`; `done(Result<R>)` runs exactly once, on
// the caller's thread for local work, or for replicated work on a library
// thread: the node's loop thread where this node leads, its peer channel's
// thread where the command was forwarded or its deadline passed — keep it
// short). `catga/asio.hpp` adds completion tokens
// (callbacks, futures, `co_await`). A query handler never runs on the loop
// thread: a read_your_writes or linearizable query that had to wait runs on
// the caller's thread when the call blocks, else on the node's read threads
// ("catga-read"), which then run `done`.
//
// Thread-safety: an Application may be used from any number of threads.
// Registration happens on the builder, before `build()`.
//
// Everything in `catga::detail` (here and in catga/detail/) is internal: the
// machinery the templates below instantiate per message and state type —
// handler slots, the state cell, result encoding — and the non-template doors
// they call: the builder's `BuilderCore`, and the in-process engine's few
// functions in catga/detail/slots.hpp (the engine itself is not in include/).
// It is not part of the API and may change in any release; user code never
// names it.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "catga/backup.hpp"
#include "catga/behavior.hpp"
#include "catga/cluster.hpp"
#include "catga/context.hpp"
#include "catga/detail/slots.hpp"
#include "catga/export.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga {

// The move-only callback type of the API (defined in catga/detail/).
using detail::UniqueFunction;

// How fresh a query's view of the state must be.
enum class Consistency : std::uint8_t {
  local,             // whatever this node has applied (fastest; may be stale on a follower)
  read_your_writes,  // wait until this node applied `QueryOptions::min_index`
  linearizable,      // reflects every command acknowledged before the query started
};

struct CommandOptions {
  // How long the library may try (including retries on another leader).
  std::chrono::milliseconds timeout{10'000};
  // A caller-supplied key: commands with the same key apply once and later
  // ones get the first one's result (HTTP `Idempotency-Key`).
  std::string idempotency_key;
  // Who asks (behaviours see it as Request::principal()); nullptr: anonymous.
  std::shared_ptr<const Principal> principal;
  // The caller's trace context (HTTP `traceparent`); invalid: none. See
  // catga/tracing.hpp.
  TraceContext trace_parent;
};

struct QueryOptions {
  Consistency consistency = Consistency::local;
  // For read_your_writes: the log index a command's receipt reported.
  std::uint64_t min_index = 0;
  std::chrono::milliseconds timeout{10'000};
  // Who asks (behaviours see it as Request::principal()); nullptr: anonymous.
  std::shared_ptr<const Principal> principal;
  // The caller's trace context (HTTP `traceparent`); invalid: none.
  TraceContext trace_parent;
};

// A command's result together with the log index that carried it (pass the
// index to a read_your_writes query on any node).
template <class R>
struct Receipt {
  Result<R> result;
  std::uint64_t index = 0;
};

// The completion of a call by wire name (Application::send_encoded and
// friends): the encoded Result — a MessagePack array [code, value] on success
// (code 0), [code, message] on error — and, for a command, the log index that
// carried it (0 otherwise).
using EncodedDone = UniqueFunction<void(Result<std::string> encoded_result, std::uint64_t index)>;

// A registered message, as generic endpoints and tooling list them.
struct MessageInfo {
  std::string_view wire_name;
  MessageKind kind;
};

class Application;

namespace internal {
// What an Application keeps behind its header (src/core/replicator.hpp).
struct ApplicationImpl;
struct ApplicationAccess;
// What an ApplicationBuilder collects (src/core/replicator.hpp).
struct BuildPlan;
}  // namespace internal

namespace detail {

// How a builder's templates hand the by-wire-name path of a message type to
// the Application (the decoding entry points are instantiated per type).
struct EncodedEntry {
  MessageKind kind;
  void (*command)(Application&, std::string_view payload, const CommandOptions&, EncodedDone) = nullptr;
  void (*query)(Application&, std::string_view payload, const QueryOptions&, EncodedDone) = nullptr;
};

template <class R>
Result<void> outcome_of(const Result<R>& r) {
  if (r) return {};
  return r.error();
}

// What an ApplicationBuilder collects, behind one non-template door
// (src/core/application.cc).
class CATGA_EXPORT BuilderCore {
 public:
  explicit BuilderCore(std::unique_ptr<StateBase> state);
  ~BuilderCore();
  BuilderCore(const BuilderCore&) = delete;
  BuilderCore& operator=(const BuilderCore&) = delete;

  Mediator& mediator() noexcept;
  void note(const Error& error);
  void add_encoded(std::string_view wire_name, EncodedEntry entry);
  void in_memory();
  void data_dir(std::filesystem::path dir);
  void cluster(ClusterOptions options);
  Result<std::unique_ptr<Application>> build();

 private:
  std::unique_ptr<internal::BuildPlan> plan_;
};

}  // namespace detail

class CATGA_EXPORT Application {
 public:
  Application(const Application&) = delete;
  Application& operator=(const Application&) = delete;
  // Stops the node (if any): pending calls complete with `unavailable`.
  ~Application();

  // ---- commands ----
  template <CommandMessage M>
  Result<result_of<M>> send(const M& command, const CommandOptions& options = {}) {
    auto* slot = detail::slot_of<M>(*mediator_);
    if (!slot) [[unlikely]] return detail::no_handler(wire_name_of<M>, MessageKind::command);
    if (!replicated_ && !detail::has_behaviors(*mediator_)) return detail::run_local(*mediator_, *slot, command);
    return wait_for<Result<result_of<M>>>([&](auto done) { send(command, options, std::move(done)); });
  }

  template <CommandMessage M, class Done>
    requires std::is_invocable_v<Done&, Result<result_of<M>>>
  void send(const M& command, const CommandOptions& options, Done&& done) {
    send_receipt(command, options,
                 [done = std::forward<Done>(done)](Receipt<result_of<M>> r) mutable { done(std::move(r.result)); });
  }

  // Like send, but also reports the log index that carried the command.
  template <CommandMessage M>
  Receipt<result_of<M>> send_receipt(const M& command, const CommandOptions& options = {}) {
    return wait_for<Receipt<result_of<M>>>([&](auto done) { send_receipt(command, options, std::move(done)); });
  }

  template <CommandMessage M, class Done>
    requires std::is_invocable_v<Done&, Receipt<result_of<M>>>
  void send_receipt(const M& command, const CommandOptions& options, Done&& done);

  // ---- queries ----
  template <QueryMessage Q>
  Result<result_of<Q>> send(const Q& query, const QueryOptions& options = {}) {
    auto* slot = detail::slot_of<Q>(*mediator_);
    if (!slot) [[unlikely]] return detail::no_handler(wire_name_of<Q>, MessageKind::query);
    if ((!replicated_ || options.consistency == Consistency::local) && !detail::has_behaviors(*mediator_)) {
      if (auto stopped = local_read_refusal()) [[unlikely]] return std::move(*stopped);
      return detail::run_query(*mediator_, *slot, query);
    }
    // Waits until the node may serve it, then runs the query on this thread.
    std::optional<Result<result_of<Q>>> rejected;
    std::vector<Observer> observers;
    QueryOptions effective = options;
    Request request(query);
    auto reject = [&rejected](Result<result_of<Q>> r) { rejected.emplace(std::move(r)); };
    if (!admit<result_of<Q>>(request, observers, reject, effective)) return std::move(*rejected);
    const bool local = !replicated_ || effective.consistency == Consistency::local;
    return answer<result_of<Q>>(*slot, query, local ? local_readable() : wait_readable(effective), observers);
  }

  template <QueryMessage Q, class Done>
    requires std::is_invocable_v<Done&, Result<result_of<Q>>>
  void send(const Q& query, const QueryOptions& options, Done&& done);

  // ---- events ----
  // Delivers `event` to its handlers on every node (through the log when
  // clustered). Completes once it has been applied on this node's leader.
  template <EventMessage E>
  Result<void> publish(const E& event, const CommandOptions& options = {}) {
    if (!replicated_ && !detail::has_behaviors(*mediator_)) return deliver_here(event), Result<void>();
    return wait_for<Result<void>>([&](auto done) { publish(event, options, std::move(done)); });
  }
  template <EventMessage E, class Done>
    requires std::is_invocable_v<Done&, Result<void>>
  void publish(const E& event, const CommandOptions& options, Done&& done);

  // ---- by wire name (generic endpoints, tooling) ----
  // `payload` is the MessagePack encoding of the message (fields by name).
  // The message is decoded and sent exactly like the typed calls, behaviours
  // included; `done` receives the encoded Result and, for commands, the log
  // index (see EncodedDone).
  // Errors before sending: unimplemented (no such wire name of that kind),
  // invalid_argument (the payload does not decode).
  void send_encoded(std::string_view wire_name, std::string_view payload, const CommandOptions& options,
                    EncodedDone done);
  void query_encoded(std::string_view wire_name, std::string_view payload, const QueryOptions& options,
                     EncodedDone done);
  void publish_encoded(std::string_view wire_name, std::string_view payload, const CommandOptions& options,
                       EncodedDone done);

  // ---- the node ----
  // In-memory applications report a leader with id 0.
  NodeStatus status() const;

  // ---- membership and leadership (clustered applications; on the leader) ----
  // One change at a time: a second one while the first runs fails with
  // failed_precondition; on a follower they fail with unavailable naming the
  // leader. `done` runs once, on a library thread.
  //
  // Adds `member` with its role (a voter catches up as a non-voter first).
  // The new node must be started with ClusterOptions::join = true.
  void add_member(Member member, UniqueFunction<void(Result<void>)> done);
  // Changes a member's role (voter, standby, spare).
  void assign_role(std::uint64_t id, MemberRole role, UniqueFunction<void(Result<void>)> done);
  void remove_member(std::uint64_t id, UniqueFunction<void(Result<void>)> done);
  // Hands leadership to member `to` (0: the most up-to-date voter).
  void transfer_leadership(std::uint64_t to, UniqueFunction<void(Result<void>)> done);
  // Takes a snapshot on the leader now (they are also taken automatically,
  // see ClusterOptions::snapshot_threshold_bytes). `done` gets the log
  // index the snapshot covers at least; the file is written right after.
  void take_snapshot(UniqueFunction<void(Result<std::uint64_t>)> done);
  // Online backup (catga/backup.hpp): takes a snapshot on the leader now and
  // hands over the backup file's bytes — the snapshot libraft wrote, with the
  // cluster id, the index and term it covers, the configuration there and a
  // checksum. The state is read from disk on a thread of its own, never on
  // the node's loop. `done` runs once, on a library thread. Errors:
  // unavailable on a follower (naming the leader), failed_precondition in
  // memory, internal if the snapshot files cannot be read.
  void backup(UniqueFunction<void(Result<std::string>)> done);
  // Blocking form: writes the backup to `file` durably (temporary file, fsync,
  // rename, fsync of the directory) and returns what it holds.
  Result<BackupInfo> backup(const std::filesystem::path& file);
  // Blocking forms. A change or transfer not completed within `timeout`
  // returns deadline_exceeded and goes on (libraft cannot take it back): it
  // may still take effect — a new voter still catching up (libraft gives a
  // silent one 30 s per round), a commit without a quorum. Check status()
  // (members, roles, leader) before asking again; the outcome is logged on
  // this node when it comes. The callback forms above wait for the outcome.
  Result<std::uint64_t> take_snapshot();
  Result<void> add_member(Member member, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  Result<void> assign_role(std::uint64_t id, MemberRole role,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
  Result<void> remove_member(std::uint64_t id, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  Result<void> transfer_leadership(std::uint64_t to = 0, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // False for in-memory applications.
  bool replicated() const noexcept { return replicated_; }
  // Registered messages (for generic endpoints and tooling).
  std::vector<MessageInfo> messages() const;

 private:
  friend class detail::BuilderCore;
  friend struct internal::ApplicationAccess;  // tests and the HTTP layer (src/core/application_access.hpp)
  Application(std::unique_ptr<detail::Mediator> mediator, std::unique_ptr<internal::ApplicationImpl> impl);

  // The non-template doors of the templates below (src/core/application.cc).
  // Hands an encoded command or event to the engine.
  void submit(MessageKind kind, std::string_view wire_name, std::string payload, const CommandOptions& options,
              EncodedDone done);
  // Completes once the local state satisfies `options.consistency`; `done`
  // runs the query (on a library thread when the read had to wait).
  void await_readable(const QueryOptions& options, UniqueFunction<void(Result<void>)> done);
  // The same for a blocking call: returns once the local state satisfies
  // `options.consistency`, and the caller runs the query on its own thread.
  Result<void> wait_readable(const QueryOptions& options);
  // Why a `local` query must not run ("node stopped: …" once the node
  // stopped itself: its state may be arbitrarily stale), or nothing.
  std::optional<Error> local_read_refusal() const;
  Result<void> local_readable() const {
    if (auto stopped = local_read_refusal()) [[unlikely]] return std::move(*stopped);
    return {};
  }
  // Runs the query if `readable`, and tells the behaviours' observers.
  template <class R, class Slot, class Q>
  Result<R> answer(Slot& slot, const Q& query, Result<void> readable, std::vector<Observer>& observers) {
    Result<R> result = readable ? detail::run_query(*mediator_, slot, query) : Result<R>(std::move(readable).error());
    if (!observers.empty()) detail::notify(observers, detail::outcome_of(result));
    return result;
  }
  // In memory: delivers `event` to this process's handlers, at once.
  template <EventMessage E>
  void deliver_here(const E& event) {
    detail::deliver_event(*mediator_, event,
                          EventInfo{detail::local_index(*mediator_), 1, std::chrono::system_clock::now(), true, false});
  }
  // Calls `start(wake)` and blocks until `wake()` ran (on any thread).
  static void block_until_woken(UniqueFunction<void(UniqueFunction<void()> wake)> start);
  // Runs a callback-style call and blocks until its completion delivers a T.
  template <class T, class Call>
  static T wait_for(Call&& call) {
    std::optional<T> value;
    block_until_woken([&](UniqueFunction<void()> wake) {
      call([&value, wake = std::move(wake)](T v) mutable {
        value.emplace(std::move(v));
        wake();
      });
    });
    return std::move(*value);
  }

  // Runs behaviours; false (and `done` called) when one rejected. Updates
  // `options` (CommandOptions or QueryOptions) with the deadline and trace
  // context the behaviours left.
  template <class R, class Done, class Options>
  bool admit(Request& request, std::vector<Observer>& observers, Done& done, Options& options);

  // The in-process engine the templates run messages through, declared only
  // (src/core/mediator.hpp); reached through catga/detail/slots.hpp.
  std::unique_ptr<detail::Mediator> mediator_;
  // The replicated engine (none in memory) and the messages by wire name.
  std::unique_ptr<internal::ApplicationImpl> impl_;
  bool replicated_;
};

namespace detail {
// Decodes M from `payload` and sends it through the typed path.
template <Message M>
void send_encoded_as(Application& app, std::string_view payload, const CommandOptions& options, EncodedDone done);
template <QueryMessage Q>
void query_encoded_as(Application& app, std::string_view payload, const QueryOptions& options, EncodedDone done);
}  // namespace detail

// Builds an Application around a state type `State` (default-constructible,
// serializable with MSGPACK_DEFINE_MAP for snapshots).
template <class State>
class ApplicationBuilder {
 public:
  ApplicationBuilder() : core_(std::make_unique<detail::StateCell<State>>()) {}

  // The command's one handler: (State&, const M&, CommandContext&) or
  // (State&, const M&), returning Result<R> or R. Must be deterministic.
  template <CommandMessage M, class F>
  ApplicationBuilder& command(F handler) {
    note(detail::add_slot(core_.mediator(), std::make_unique<detail::CommandHandlerSlot<State, M, std::decay_t<F>>>(std::move(handler))));
    core_.add_encoded(wire_name_of<M>, detail::EncodedEntry{MessageKind::command, &detail::send_encoded_as<M>, nullptr});
    return *this;
  }
  // The query's one handler: (const State&, const Q&) returning Result<R> or R.
  template <QueryMessage Q, class F>
  ApplicationBuilder& query(F handler) {
    note(detail::add_slot(core_.mediator(), std::make_unique<detail::QueryHandlerSlot<State, Q, std::decay_t<F>>>(std::move(handler))));
    core_.add_encoded(wire_name_of<Q>, detail::EncodedEntry{MessageKind::query, nullptr, &detail::query_encoded_as<Q>});
    return *this;
  }
  // One more handler for event E: (const E&, const EventContext&) or (const E&),
  // returning nothing or Result<void>. Handlers never stop each other.
  template <EventMessage E, class F>
  ApplicationBuilder& on(F handler, Delivery delivery = Delivery::every_node) {
    auto* slot = detail::slot_of<E>(core_.mediator());
    if (!slot) {
      auto added = detail::add_slot(core_.mediator(), std::make_unique<detail::EventSlot<E>>());
      if (!added) return note(added), *this;
      slot = static_cast<detail::EventSlot<E>*>(*added);
      core_.add_encoded(wire_name_of<E>, detail::EncodedEntry{MessageKind::event, &detail::send_encoded_as<E>, nullptr});
    }
    slot->add(std::move(handler), delivery);
    return *this;
  }
  // A restore hook: (const State&), returning nothing or Result<void>. A
  // snapshot replaces the state without replaying the entries it covers, so
  // their events are never delivered on this node — at start (the node's own
  // snapshot) or when the leader installs one on a follower that fell behind
  // its log. Every hook is then called, on every node, with the new state:
  // rebuild each every-node read model from it (replace, do not add). Events
  // of later entries follow as usual.
  // Threading: on the thread that applies commands and delivers events (the
  // node's Raft loop thread; inside build() while the node loads its data),
  // before any event of a later entry, with the state under its shared lock
  // (queries may run meanwhile; do not send from inside). Hooks run in the
  // order added; one that fails is logged and counted like an event handler.
  // Never called in memory, nor when a node starts without a snapshot (it
  // then delivers every event of its log again, with `replay` set).
  template <class F>
  ApplicationBuilder& on_restore(F hook) {
    static_assert(std::is_invocable_v<F&, const State&>, "a restore hook is callable as (const State&)");
    detail::add_restore_hook(core_.mediator(), [f = std::move(hook)](const detail::StateBase& state) mutable -> Result<void> {
      return detail::call_handler<void>("on_restore", f, static_cast<const detail::StateCell<State>&>(state).value);
    });
    return *this;
  }
  // Appends a pipeline behaviour (they run in the order added).
  ApplicationBuilder& use(std::unique_ptr<Behavior> behavior) {
    detail::add_behavior(core_.mediator(), std::move(behavior));
    return *this;
  }

  // The one block that makes this a replicated cluster member.
  ApplicationBuilder& cluster(ClusterOptions options) {
    core_.cluster(std::move(options));
    return *this;
  }
  // A single durable node whose log lives in `dir`.
  ApplicationBuilder& data_dir(std::filesystem::path dir) {
    core_.data_dir(std::move(dir));
    return *this;
  }
  // No log and no disk: state lives and dies with the process.
  ApplicationBuilder& in_memory() {
    core_.in_memory();
    return *this;
  }

  // Validates everything, opens the data directory, starts the node.
  // Registration errors (duplicate handlers, clashing wire names) and invalid
  // options are reported here; the builder is consumed.
  Result<std::unique_ptr<Application>> build() { return core_.build(); }

 private:
  template <class T>
  void note(const Result<T>& r) {
    if (!r) core_.note(r.error());
  }
  detail::BuilderCore core_;
};

// ---------------------------------------------------------------- templates

template <class R, class Done, class Options>
bool Application::admit(Request& request, std::vector<Observer>& observers, Done& done, Options& options) {
  if (!detail::has_behaviors(*mediator_)) return true;
  std::chrono::milliseconds& timeout = options.timeout;
  request.set_principal(options.principal.get());
  request.set_trace_context(options.trace_parent);
  const auto start = std::chrono::steady_clock::now();
  request.set_deadline(start + timeout);
  if (auto admitted = detail::run_behaviors(*mediator_, request, observers); !admitted) {
    done(Result<R>(std::move(admitted).error()));
    return false;
  }
  timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*request.deadline() - start);
  options.trace_parent = request.trace_context();
  if (timeout.count() <= 0) {
    Result<void> outcome(Error{Code::deadline_exceeded, "deadline passed before " + std::string(request.wire_name()) + " was sent"});
    detail::notify(observers, outcome);
    done(Result<R>(outcome.error()));
    return false;
  }
  return true;
}

template <CommandMessage M, class Done>
  requires std::is_invocable_v<Done&, Receipt<result_of<M>>>
void Application::send_receipt(const M& command, const CommandOptions& options, Done&& done) {
  using R = result_of<M>;
  auto* slot = detail::slot_of<M>(*mediator_);
  if (!slot) {
    done(Receipt<R>{detail::no_handler(wire_name_of<M>, MessageKind::command), 0});
    return;
  }
  std::vector<Observer> observers;
  CommandOptions effective = options;
  Request request(command);
  auto reject = [&done](Result<R> r) { done(Receipt<R>{std::move(r), 0}); };
  if (!admit<R>(request, observers, reject, effective)) return;
  if (!replicated_) {
    std::uint64_t index = 0;
    Result<R> result = detail::run_local(*mediator_, *slot, command, &index);
    if (!observers.empty()) detail::notify(observers, detail::outcome_of(result));
    done(Receipt<R>{std::move(result), index});
    return;
  }
  submit(MessageKind::command, wire_name_of<M>, encode(command), effective,
                      [done = std::forward<Done>(done), observers = std::move(observers)](
                          Result<std::string> encoded, std::uint64_t index) mutable {
                        Result<R> result = encoded ? detail::decode_result<R>(*encoded) : Result<R>(std::move(encoded).error());
                        if (!observers.empty()) detail::notify(observers, detail::outcome_of(result));
                        done(Receipt<R>{std::move(result), index});
                      });
}

template <QueryMessage Q, class Done>
  requires std::is_invocable_v<Done&, Result<result_of<Q>>>
void Application::send(const Q& query, const QueryOptions& options, Done&& done) {
  using R = result_of<Q>;
  auto* slot = detail::slot_of<Q>(*mediator_);
  if (!slot) {
    done(Result<R>(detail::no_handler(wire_name_of<Q>, MessageKind::query)));
    return;
  }
  std::vector<Observer> observers;
  QueryOptions effective = options;
  Request request(query);
  if (!admit<R>(request, observers, done, effective)) return;
  if (!replicated_ || effective.consistency == Consistency::local) {
    done(answer<R>(*slot, query, local_readable(), observers));
    return;
  }
  // The query is copied: it runs later, once the node may serve it.
  await_readable(
      effective, [this, slot, query, done = std::forward<Done>(done), observers = std::move(observers)](
                     Result<void> readable) mutable { done(answer<R>(*slot, query, std::move(readable), observers)); });
}

template <EventMessage E, class Done>
  requires std::is_invocable_v<Done&, Result<void>>
void Application::publish(const E& event, const CommandOptions& options, Done&& done) {
  std::vector<Observer> observers;
  CommandOptions effective = options;
  Request request(event);
  if (!admit<void>(request, observers, done, effective)) return;
  if (!replicated_) {
    deliver_here(event);
    if (!observers.empty()) detail::notify(observers, Result<void>());
    done(Result<void>());
    return;
  }
  submit(MessageKind::event, wire_name_of<E>, encode(event), effective,
                      [done = std::forward<Done>(done), observers = std::move(observers)](
                          Result<std::string> encoded, std::uint64_t) mutable {
                        Result<void> result = encoded ? detail::decode_result<void>(*encoded) : Result<void>(std::move(encoded).error());
                        if (!observers.empty()) detail::notify(observers, result);
                        done(std::move(result));
                      });
}

namespace detail {

template <Message M>
void send_encoded_as(Application& app, std::string_view payload, const CommandOptions& options, EncodedDone done) {
  auto message = decode<M>(payload);
  if (!message) return done(std::move(message).error(), 0);
  if constexpr (EventMessage<M>) {
    app.publish(*message, options, [done = std::move(done)](Result<void> r) mutable {
      std::string out;
      encode_result(out, r);
      done(std::move(out), 0);
    });
  } else {
    app.send_receipt(*message, options, [done = std::move(done)](Receipt<result_of<M>> r) mutable {
      std::string out;
      encode_result(out, r.result);
      done(std::move(out), r.index);
    });
  }
}

template <QueryMessage Q>
void query_encoded_as(Application& app, std::string_view payload, const QueryOptions& options, EncodedDone done) {
  auto query = decode<Q>(payload);
  if (!query) return done(std::move(query).error(), 0);
  app.send(*query, options, [done = std::move(done)](Result<result_of<Q>> r) mutable {
    std::string out;
    encode_result(out, r);
    done(std::move(out), 0);
  });
}

}  // namespace detail
}  // namespace catga
