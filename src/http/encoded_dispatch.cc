#include "http/encoded_dispatch.hpp"

#include <chrono>
#include <shared_mutex>
#include <vector>

#include "catga/metrics.hpp"

namespace catga::http::internal {
namespace {

using Clock = std::chrono::steady_clock;

Error not_registered(std::string_view wire_name, MessageKind kind) {
  return Error{Code::unimplemented,
               "no " + std::string(kind_name(kind)) + " named \"" + std::string(wire_name) + "\" is registered"};
}

// Records the outcome into every Metrics behaviour of the application (the
// typed path records through the behaviour itself).
class OutcomeRecorder {
 public:
  OutcomeRecorder(Application& app, MessageKind kind, std::string_view wire_name)
      : kind_(kind), wire_name_(wire_name), start_(Clock::now()) {
    for (const auto& behavior : app.mediator().behaviors()) {
      if (Metrics* m = metrics_of(*behavior)) metrics_.push_back(m);
    }
  }
  void operator()(const Result<std::string>& encoded) const {
    if (metrics_.empty()) return;
    Code code = Code::ok;
    if (!encoded) {
      code = encoded.error().code();
    } else {
      msgpack::object_handle handle;
      const msgpack::object* body = nullptr;
      if (!catga::detail::decode_result_head(*encoded, handle, code, body)) code = Code::internal;
    }
    for (Metrics* m : metrics_) m->record(kind_, wire_name_, code, Clock::now() - start_);
  }

 private:
  MessageKind kind_;
  std::string_view wire_name_;  // the registered slot's (lives as long as the application)
  Clock::time_point start_;
  std::vector<Metrics*> metrics_;
};

// In-memory commands go through Mediator::run_local, which owns the local
// index and event delivery; it takes a typed slot, so a carrier command whose
// handler applies the encoded payload through the target slot stands in.
struct EncodedCarrier {
  using catga_message = Command<void, "catga.http.encoded-carrier.v1">;
};

class CarrierSlot final : public catga::detail::CommandSlot<EncodedCarrier> {
 public:
  CarrierSlot(catga::detail::CommandSlotBase& target, std::string_view payload) : target_(target), payload_(payload) {}
  Result<void> run_locked(catga::detail::StateBase& state, const EncodedCarrier&, CommandContext& ctx) noexcept override {
    index_ = ctx.index();
    try {
      if (target_.apply_encoded_locked(state, payload_, ctx, out_)) return {};
    } catch (const std::exception& e) {
      out_.clear();
      catga::detail::encode_error_result(out_, Error{Code::internal, e.what()});
    }
    return Error{Code::aborted, "handler failed"};  // drops the command's events; `out_` has its real result
  }
  std::string& out() noexcept { return out_; }
  std::uint64_t index() const noexcept { return index_; }

 private:
  catga::detail::CommandSlotBase& target_;
  std::string_view payload_;
  std::string out_;
  std::uint64_t index_ = 0;
};

std::string run_query(Application& app, catga::detail::QuerySlotBase& slot, std::string_view payload) {
  std::string out;
  auto& state = app.mediator().state();
  std::shared_lock lock(state.mutex());
  slot.query_encoded_locked(state, payload, out);
  return out;
}

}  // namespace

std::string_view kind_name(MessageKind kind) noexcept {
  switch (kind) {
    case MessageKind::command: return "command";
    case MessageKind::query: return "query";
    case MessageKind::event: return "event";
  }
  return "unknown";
}

Result<void> check_encoded_dispatch(Application& app) {
  for (const auto& behavior : app.mediator().behaviors()) {
    if (!metrics_of(*behavior)) {
      return Error{Code::failed_precondition,
                   "the generic message endpoints cannot run this application's pipeline behaviours (they would be "
                   "bypassed); they need Application::send_encoded — only catga::Metrics is supported for now"};
    }
  }
  return {};
}

void send_encoded(Application& app, std::string_view wire_name, std::string payload, const CommandOptions& options,
                  EncodedDone done) {
  auto* slot = app.mediator().find(wire_name);
  if (!slot || slot->kind() != MessageKind::command) return done(not_registered(wire_name, MessageKind::command), 0);
  OutcomeRecorder record(app, MessageKind::command, slot->wire_name());
  if (auto* replicator = app.replicator()) {
    replicator->submit(MessageKind::command, slot->wire_name(), std::move(payload), options,
                       [record = std::move(record), done = std::move(done)](Result<std::string> encoded,
                                                                             std::uint64_t index) mutable {
                         record(encoded);
                         done(std::move(encoded), index);
                       });
    return;
  }
  CarrierSlot carrier(*static_cast<catga::detail::CommandSlotBase*>(slot), payload);
  (void)app.mediator().run_local(carrier, EncodedCarrier{});
  Result<std::string> encoded(std::move(carrier.out()));
  record(encoded);
  done(std::move(encoded), carrier.index());
}

void query_encoded(Application& app, std::string_view wire_name, std::string payload, const QueryOptions& options,
                   EncodedQueryDone done) {
  auto* found = app.mediator().find(wire_name);
  if (!found || found->kind() != MessageKind::query) return done(not_registered(wire_name, MessageKind::query));
  auto* slot = static_cast<catga::detail::QuerySlotBase*>(found);
  OutcomeRecorder record(app, MessageKind::query, slot->wire_name());
  auto* replicator = app.replicator();
  if (!replicator || options.consistency == Consistency::local) {
    Result<std::string> encoded(run_query(app, *slot, payload));
    record(encoded);
    return done(std::move(encoded));
  }
  replicator->await_readable(options, [&app, slot, payload = std::move(payload), record = std::move(record),
                                       done = std::move(done)](Result<void> readable) mutable {
    Result<std::string> encoded = readable ? Result<std::string>(run_query(app, *slot, payload))
                                           : Result<std::string>(std::move(readable).error());
    record(encoded);
    done(std::move(encoded));
  });
}

}  // namespace catga::http::internal
