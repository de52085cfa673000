#include "core/mediator.hpp"

#include "core/context_access.hpp"
#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <system_error>

namespace catga::detail {

std::size_t next_type_index() noexcept {
  static std::atomic<std::size_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------- state

namespace {
constexpr unsigned kSnapshotVersion = 1;
}

std::string StateBase::snapshot() const {
  std::string out;
  {
    StringSnapshotSink sink(out);
    write_snapshot(sink);
  }
  return out;
}

// [version, ids, bin(user state)]: the bin header is reserved and filled in
// once the user state is encoded, so the encoding is never held twice.
void StateBase::write_snapshot(SnapshotSink& sink) const {
  msgpack::packer<SnapshotSink> packer(sink);
  packer.pack_array(3);
  packer.pack(kSnapshotVersion);
  packer.pack(ids_);
  write_bin32(sink, [&] { encode_user(sink); });
}

Result<void> StateBase::restore(std::string_view bytes) {
  detail::Unpacked handle;
  if (auto r = unpack_one(bytes, DecodeLimits{.max_bytes = SIZE_MAX, .max_str = SIZE_MAX, .max_bin = SIZE_MAX}, handle);
      !r) {
    return Error{Code::data_loss, "state snapshot: " + r.error().message()};
  }
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size < 3 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
      o.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER || o.via.array.ptr[2].type != msgpack::type::BIN) {
    return Error{Code::data_loss, "state snapshot: not a catga state snapshot"};
  }
  if (o.via.array.ptr[0].via.u64 != kSnapshotVersion) {
    return Error{Code::data_loss, "state snapshot: format version " + std::to_string(o.via.array.ptr[0].via.u64) +
                                      " is not readable by this build (reads " + std::to_string(kSnapshotVersion) + ")"};
  }
  const auto& bin = o.via.array.ptr[2].via.bin;
  if (auto r = decode_user(std::string_view(bin.ptr, bin.size)); !r) {
    return Error{Code::data_loss, "state snapshot: user state: " + r.error().message()};
  }
  ids_ = o.via.array.ptr[1].via.u64;
  return {};
}

// ---------------------------------------------------------------- results

void encode_error_result(std::string& out, const Error& error) { encode_result(out, Result<void>(error)); }

Result<void> decode_result_head(std::string_view bytes, detail::Unpacked& handle, Code& code,
                                const msgpack::object*& body) {
  if (auto r = unpack_one(bytes, DecodeLimits{}, handle); !r) return Error{Code::internal, "result: " + r.error().message()};
  const msgpack::object& o = handle.get();
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2 || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
      o.via.array.ptr[0].via.u64 > static_cast<std::uint64_t>(Code::unauthenticated)) {
    return Error{Code::internal, "result: not an encoded result"};
  }
  code = static_cast<Code>(o.via.array.ptr[0].via.u64);
  body = &o.via.array.ptr[1];
  return {};
}

bool is_node_failure(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return true;
  } catch (const std::system_error&) {
    return true;
  } catch (const std::exception&) {
    return false;
  } catch (...) {
    return true;
  }
}

Error handler_exception(std::string_view wire_name, const std::exception_ptr& e) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& thrown) {
    what = thrown.what();
  } catch (...) {
  }
  return Error{Code::internal, std::string("handler for ") + std::string(wire_name) + " threw: " + what};
}

// ---------------------------------------------------------------- mediator

Mediator::Mediator(std::unique_ptr<StateBase> state) : state_(std::move(state)) {}
Mediator::~Mediator() = default;

Result<Slot*> Mediator::add_slot(std::unique_ptr<Slot> slot) {
  const std::size_t type = slot->type();
  if (slot->wire_name().starts_with("catga.")) {
    return Error{Code::invalid_argument, "wire name " + std::string(slot->wire_name()) + " uses the reserved prefix 'catga.'"};
  }
  if (auto it = by_name_.find(slot->wire_name()); it != by_name_.end()) {
    if (it->second->type() == type) {
      return Error{Code::already_exists,
                   "a handler for " + std::string(slot->wire_name()) + " is already registered (commands and queries take exactly one)"};
    }
    return Error{Code::already_exists,
                 "wire name " + std::string(slot->wire_name()) + " is declared by two different message types"};
  }
  if (by_type_.size() <= type) by_type_.resize(type + 1, nullptr);
  by_type_[type] = slot.get();
  by_name_.emplace(slot->wire_name(), slot.get());
  owned_.push_back(std::move(slot));
  return owned_.back().get();
}

Slot* Mediator::find(std::string_view wire_name) const noexcept {
  auto it = by_name_.find(wire_name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::vector<const Slot*> Mediator::slots() const {
  std::vector<const Slot*> out;
  out.reserve(owned_.size());
  for (const auto& s : owned_) out.push_back(s.get());
  return out;
}

Error no_handler(std::string_view wire_name, MessageKind kind) {
  const char* what = kind == MessageKind::command ? "command" : kind == MessageKind::query ? "query" : "event";
  return Error{Code::unimplemented, std::string("no handler registered for ") + what + " " + std::string(wire_name)};
}

Result<void> Mediator::run_behaviors(Request& request, std::vector<Observer>& observers) {
  for (auto& behavior : behaviors_) {
    Next next;
    behavior->handle(request, next);
    switch (next.state()) {
      case Next::State::continued:
        if (next.observer()) observers.push_back(std::move(next.observer()));
        break;
      case Next::State::rejected: {
        Result<void> outcome(std::move(next.error()));
        notify(observers, outcome);
        return outcome;
      }
      case Next::State::undecided: {
        Result<void> outcome(Error{Code::internal, "a behaviour neither continued nor rejected " +
                                                       std::string(request.wire_name())});
        notify(observers, outcome);
        return outcome;
      }
    }
  }
  return {};
}

void notify(std::vector<Observer>& observers, const Result<void>& outcome) noexcept {
  for (auto it = observers.rbegin(); it != observers.rend(); ++it) {
    try {
      (*it)(outcome);
    } catch (...) {
      catga::internal::log().error("catga: a behaviour's observer threw; ignored");
    }
  }
  observers.clear();
}

void Mediator::deliver_pending(CommandContext& ctx, const EventInfo& info) noexcept {
  for (auto& pending : ctx.pending_events()) {
    try {
      pending->deliver(*this, info);
    } catch (...) {
      catga::internal::log().error("catga: event delivery threw; ignored");
    }
  }
  ctx.pending_events().clear();
}

void Mediator::state_restored() noexcept {
  if (restore_hooks_.empty()) return;
  std::shared_lock lock(state_->mutex());
  for (auto& hook : restore_hooks_) {
    if (Result<void> r = hook(*state_); !r) {
      counters_.event_handler_failures.fetch_add(1, std::memory_order_relaxed);
      catga::internal::log().warn("catga: a restore hook failed: {}", r.error().to_string());
    }
  }
}

void Mediator::report_event_failure(std::string_view wire_name, const Error& error) noexcept {
  counters_.event_handler_failures.fetch_add(1, std::memory_order_relaxed);
  catga::internal::log().warn("catga: an event handler for {} failed: {}", wire_name, error.to_string());
}

// ---------------------------------------------------------------- doors of the templates (catga/detail/slots.hpp)

Result<Slot*> add_slot(Mediator& mediator, std::unique_ptr<Slot> slot) { return mediator.add_slot(std::move(slot)); }
void add_behavior(Mediator& mediator, std::unique_ptr<Behavior> behavior) { mediator.add_behavior(std::move(behavior)); }
void add_restore_hook(Mediator& mediator, RestoreHook hook) { mediator.add_restore_hook(std::move(hook)); }
Slot* find_slot(const Mediator& mediator, std::size_t type) noexcept { return mediator.slot_at(type); }
bool has_behaviors(const Mediator& mediator) noexcept { return !mediator.behaviors().empty(); }
Result<void> run_behaviors(Mediator& mediator, Request& request, std::vector<Observer>& observers) {
  return mediator.run_behaviors(request, observers);
}
std::uint64_t local_index(const Mediator& mediator) noexcept { return mediator.local_index(); }

void count_events_delivered(Mediator& mediator, std::uint64_t count) noexcept {
  mediator.counters().events_delivered.fetch_add(count, std::memory_order_relaxed);
}
void report_event_failure(Mediator& mediator, std::string_view wire_name, const Error& error) noexcept {
  mediator.report_event_failure(wire_name, error);
}
StateBase& state_of(Mediator& mediator) noexcept { return mediator.state(); }

namespace {
// The time is read before the lock is taken, as run_local always did.
CommandContext begin_local(Mediator& mediator, std::atomic<std::uint64_t>& local_index, std::uint64_t* index_out) noexcept {
  const Timestamp now = std::chrono::system_clock::now();
  StateBase& state = mediator.state();
  state.mutex().lock();
  const std::uint64_t index = local_index.load(std::memory_order_relaxed) + 1;
  local_index.store(index, std::memory_order_relaxed);
  if (index_out) *index_out = index;
  return catga::internal::CommandContextAccess::make(index, 1, now, &state.id_counter());
}
}  // namespace

LocalCommand::LocalCommand(Mediator& mediator, std::uint64_t* index_out) noexcept
    : mediator_(mediator), state_(mediator.state()), ctx_(begin_local(mediator, mediator.local_index_, index_out)) {}

LocalCommand::~LocalCommand() {
  state_.mutex().unlock();
  auto& pending = catga::internal::CommandContextAccess::pending_events(ctx_);
  if (pending.empty()) return;
  if (ok_) mediator_.deliver_pending(ctx_, EventInfo{ctx_.index(), 1, ctx_.time(), true, false});
  else pending.clear();
}

}  // namespace catga::detail
