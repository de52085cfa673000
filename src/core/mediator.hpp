// core/mediator.hpp — the in-process engine behind `Application`: the
// registry of handler slots (by type and by wire name), the behaviours, the
// restore hooks, the state cell and the counters. No threads, no I/O.
//
// Internal to the library (src/): the public templates reach it only through
// the functions declared in catga/detail/slots.hpp; tests and benchmarks
// include it through the src/ include path their targets have.
// Thread-safety: registration happens before the application starts; after
// that the registry is read-only. The state is guarded by `state().mutex()`:
// commands hold it exclusively, queries shared. Callers of the `*_locked`
// functions hold the right lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "catga/behavior.hpp"
#include "catga/context.hpp"
#include "catga/detail/slots.hpp"
#include "catga/export.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga::detail {

struct MediatorCounters {
  std::atomic<std::uint64_t> events_delivered{0};
  std::atomic<std::uint64_t> event_handler_failures{0};
};

class CATGA_EXPORT Mediator {
 public:
  explicit Mediator(std::unique_ptr<StateBase> state);
  Mediator(const Mediator&) = delete;
  Mediator& operator=(const Mediator&) = delete;
  ~Mediator();

  // ---- registration (before start) ----
  // Fails on a second handler for the same command/query or a wire name used
  // by two different types. On success returns the registered slot.
  Result<Slot*> add_slot(std::unique_ptr<Slot> slot);
  void add_behavior(std::unique_ptr<Behavior> behavior) { behaviors_.push_back(std::move(behavior)); }

  // ---- lookup ----
  // The slot registered for the type with this type_index, or nullptr.
  Slot* slot_at(std::size_t type) const noexcept { return type < by_type_.size() ? by_type_[type] : nullptr; }
  // The slot registered for M (CommandSlot<M>, QuerySlot<M> or EventSlot<M>), or nullptr.
  template <Message M>
  auto* slot() const noexcept {
    return slot_of<M>(*this);
  }
  Slot* find(std::string_view wire_name) const noexcept;
  std::vector<const Slot*> slots() const;
  static Error no_handler(std::string_view wire_name, MessageKind kind) { return detail::no_handler(wire_name, kind); }

  StateBase& state() noexcept { return *state_; }
  const std::vector<std::unique_ptr<Behavior>>& behaviors() const noexcept { return behaviors_; }
  MediatorCounters& counters() noexcept { return counters_; }

  // Runs the behaviours for `request` (see detail::run_behaviors).
  Result<void> run_behaviors(Request& request, std::vector<Observer>& observers);
  static void notify(std::vector<Observer>& observers, const Result<void>& outcome) noexcept {
    detail::notify(observers, outcome);
  }

  // Delivers the events a command handler raised (call without the state lock).
  void deliver_pending(CommandContext& ctx, const EventInfo& info) noexcept;
  template <EventMessage E>
  void deliver(const E& event, const EventInfo& info) noexcept {
    deliver_event(*this, event, info);
  }
  void report_event_failure(std::string_view wire_name, const Error& error) noexcept;

  // ---- restore hooks (ApplicationBuilder::on_restore) ----
  void add_restore_hook(RestoreHook hook) { restore_hooks_.push_back(std::move(hook)); }
  // Calls every restore hook, in registration order, with the state under its
  // shared lock. Call right after a snapshot replaced the state, on the thread
  // that applies commands, without holding the state lock. A failing hook is
  // reported like a failing event handler.
  void state_restored() noexcept;

  // ---- in-memory execution (no cluster; detail::run_local) ----
  // The last index an in-memory command applied at (any thread).
  std::uint64_t local_index() const noexcept { return local_index_.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<StateBase> state_;
  std::vector<std::unique_ptr<Slot>> owned_;
  std::vector<Slot*> by_type_;
  std::unordered_map<std::string_view, Slot*> by_name_;
  std::vector<std::unique_ptr<Behavior>> behaviors_;
  std::vector<RestoreHook> restore_hooks_;
  MediatorCounters counters_;
  std::atomic<std::uint64_t> local_index_{0};  // in-memory mode only; written under the exclusive lock

  friend class LocalCommand;  // numbers in-memory commands
};

}  // namespace catga::detail
