// Application: chooses where the state lives (memory, a single durable node,
// a cluster member) and wires the mediator to it. In memory it needs nothing
// but core; the other placements take the engine catga::cluster provides
// (core/replicated_engine.hpp).
#include "catga/application.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "catga/logging.hpp"

#include "core/replicated_engine.hpp"
#include "core/replicator.hpp"
#include "core/waiter.hpp"

// Defined by catga::cluster; null when the program does not link it.
extern "C" {
extern CATGA_EXPORT const catga::internal::ReplicatedEngineFactory catga_replicated_engine __attribute__((weak));
}

namespace catga {

Application::Application(std::unique_ptr<detail::Mediator> mediator, std::unique_ptr<internal::ApplicationImpl> impl)
    : mediator_(std::move(mediator)), impl_(std::move(impl)), replicated_(impl_->replicator != nullptr) {}

namespace {
// The entry registered for `wire_name` as a message of `kind`; otherwise
// `done` gets unimplemented and the result is null.
const detail::EncodedEntry* encoded_entry(const internal::EncodedTable& table, std::string_view wire_name,
                                          MessageKind kind, EncodedDone& done) {
  auto it = table.find(wire_name);
  if (it == table.end() || it->second.kind != kind) {
    done(detail::Mediator::no_handler(wire_name, kind), 0);
    return nullptr;
  }
  return &it->second;
}
}  // namespace

void Application::send_encoded(std::string_view wire_name, std::string_view payload, const CommandOptions& options,
                               EncodedDone done) {
  if (auto* e = encoded_entry(impl_->encoded, wire_name, MessageKind::command, done)) e->command(*this, payload, options, std::move(done));
}

void Application::query_encoded(std::string_view wire_name, std::string_view payload, const QueryOptions& options,
                                EncodedDone done) {
  if (auto* e = encoded_entry(impl_->encoded, wire_name, MessageKind::query, done)) e->query(*this, payload, options, std::move(done));
}

void Application::publish_encoded(std::string_view wire_name, std::string_view payload, const CommandOptions& options,
                                  EncodedDone done) {
  if (auto* e = encoded_entry(impl_->encoded, wire_name, MessageKind::event, done)) e->command(*this, payload, options, std::move(done));
}

void Application::submit(MessageKind kind, std::string_view wire_name, std::string payload,
                         const CommandOptions& options, EncodedDone done) {
  impl_->replicator->submit(kind, wire_name, std::move(payload), options, std::move(done));
}

std::optional<Error> Application::local_read_refusal() const {
  if (!replicated_) return std::nullopt;
  return impl_->replicator->local_read_refusal();
}

void Application::await_readable(const QueryOptions& options, UniqueFunction<void(Result<void>)> done) {
  impl_->replicator->await_readable(options, std::move(done), internal::Replicator::QueryRunner::worker);
}

Result<void> Application::wait_readable(const QueryOptions& options) {
  // On this thread's stack: the waiter may go as soon as wait() returned.
  internal::Waiter<Result<void>> readable;
  impl_->replicator->await_readable(
      options, [&readable](Result<void> r) { readable.set(std::move(r)); }, internal::Replicator::QueryRunner::caller);
  return readable.wait();
}

void Application::block_until_woken(UniqueFunction<void(UniqueFunction<void()> wake)> start) {
  // Shared with `wake`: it may run after this call returned (it outlives
  // the wait only as long as the completion that holds it).
  auto woken = std::make_shared<internal::Waiter<bool>>();
  start([woken] { woken->set(true); });
  woken->wait();
}

Application::~Application() {
  // The replicator (and its loop thread) goes first: it calls into the mediator.
  impl_->replicator.reset();
}

std::vector<MessageInfo> Application::messages() const {
  std::vector<MessageInfo> out;
  for (const detail::Slot* slot : mediator_->slots()) out.push_back({slot->wire_name(), slot->kind()});
  return out;
}

NodeStatus Application::status() const {
  if (replicated_) return impl_->replicator->status();
  NodeStatus s;
  s.role = NodeRole::leader;
  s.term = 1;
  s.ready = true;
  s.commit_index = s.applied_index = mediator_->local_index();
  return s;
}

namespace {
Error not_replicated() {
  return Error{Code::failed_precondition, "membership needs a clustered application (this one is in memory)"};
}
}  // namespace

void Application::add_member(Member member, UniqueFunction<void(Result<void>)> done) {
  if (!replicated_) return done(not_replicated());
  impl_->replicator->add_member(std::move(member), std::move(done));
}
void Application::assign_role(std::uint64_t id, MemberRole role, UniqueFunction<void(Result<void>)> done) {
  if (!replicated_) return done(not_replicated());
  impl_->replicator->assign_role(id, role, std::move(done));
}
void Application::remove_member(std::uint64_t id, UniqueFunction<void(Result<void>)> done) {
  if (!replicated_) return done(not_replicated());
  impl_->replicator->remove_member(id, std::move(done));
}
void Application::transfer_leadership(std::uint64_t to, UniqueFunction<void(Result<void>)> done) {
  if (!replicated_) return done(not_replicated());
  impl_->replicator->transfer_leadership(to, std::move(done));
}
void Application::take_snapshot(UniqueFunction<void(Result<std::uint64_t>)> done) {
  if (!replicated_) return done(Error{Code::failed_precondition, "an in-memory application has no log to snapshot"});
  impl_->replicator->take_snapshot(std::move(done), internal::kSnapshotWait);
}
Result<std::uint64_t> Application::take_snapshot() {
  return wait_for<Result<std::uint64_t>>([&](auto done) { take_snapshot(std::move(done)); });
}

namespace {
// The blocking form of a membership change or a leadership transfer
// (`start` begins it with the completion it is given): its outcome, or
// deadline_exceeded once `timeout` has passed. The change is not cancelled —
// libraft cannot take a configuration change back — so it may still take
// effect; its outcome is then logged when it comes.
template <class Start>
Result<void> wait_for_change(const std::string& what, std::chrono::milliseconds timeout, Start start) {
  if (timeout.count() <= 0) {
    return Error{Code::invalid_argument, what + ": the timeout must be positive (got " +
                                             std::to_string(timeout.count()) + " ms)"};
  }
  // Clamped so that milliseconds::max() ("wait for the outcome") cannot overflow the clock.
  const auto deadline =
      std::chrono::steady_clock::now() + std::min<std::chrono::milliseconds>(timeout, std::chrono::hours(24 * 365));
  // Shared with the completion, which may come after this call returned.
  auto outcome = std::make_shared<internal::Waiter<Result<void>>>();
  start([outcome](Result<void> r) { outcome->set(std::move(r)); });
  auto done = outcome->wait_until(deadline, [what](Result<void> late) {
    log_message(late ? LogLevel::info : LogLevel::warn,
                what + ", answered deadline_exceeded after its timeout, has now " +
                    (late ? std::string("completed") : "failed: " + late.error().to_string()));
  });
  if (done) return std::move(*done);
  return Error{Code::deadline_exceeded,
               what + " did not complete within " + std::to_string(timeout.count()) +
                   " ms; it goes on and may still take effect (a new voter still catching up, a commit "
                   "without a quorum, a transfer still running): check status() (members and their roles, "
                   "leader) before asking again"};
}
}  // namespace

Result<void> Application::add_member(Member member, std::chrono::milliseconds timeout) {
  return wait_for_change("adding member " + std::to_string(member.id), timeout,
                         [&](auto done) { add_member(std::move(member), std::move(done)); });
}
Result<void> Application::assign_role(std::uint64_t id, MemberRole role, std::chrono::milliseconds timeout) {
  return wait_for_change("assigning a role to member " + std::to_string(id), timeout,
                         [&](auto done) { assign_role(id, role, std::move(done)); });
}
Result<void> Application::remove_member(std::uint64_t id, std::chrono::milliseconds timeout) {
  return wait_for_change("removing member " + std::to_string(id), timeout,
                         [&](auto done) { remove_member(id, std::move(done)); });
}
Result<void> Application::transfer_leadership(std::uint64_t to, std::chrono::milliseconds timeout) {
  const std::string what = to == 0 ? std::string("transferring leadership")
                                   : "transferring leadership to member " + std::to_string(to);
  return wait_for_change(what, timeout, [&](auto done) { transfer_leadership(to, std::move(done)); });
}

namespace detail {

using internal::BuildPlan;
using internal::Placement;

BuilderCore::BuilderCore(std::unique_ptr<StateBase> state) : plan_(std::make_unique<BuildPlan>()) {
  plan_->mediator = std::make_unique<Mediator>(std::move(state));
}
BuilderCore::~BuilderCore() = default;
Mediator& BuilderCore::mediator() noexcept { return *plan_->mediator; }
void BuilderCore::note(const Error& error) { plan_->errors.push_back(error); }
void BuilderCore::add_encoded(std::string_view wire_name, EncodedEntry entry) {
  plan_->encoded.emplace(wire_name, entry);
}
void BuilderCore::in_memory() { plan_->placement = Placement::in_memory; }
void BuilderCore::data_dir(std::filesystem::path dir) {
  plan_->placement = Placement::data_dir;
  plan_->data_dir = std::move(dir);
}
void BuilderCore::cluster(ClusterOptions options) {
  plan_->placement = Placement::cluster;
  plan_->cluster = std::move(options);
}

Result<std::unique_ptr<Application>> BuilderCore::build() {
  if (!plan_) return Error{Code::failed_precondition, "this builder was already built"};
  BuildPlan& plan = *plan_;
  if (!plan.errors.empty()) {
    std::string message = "the application's registrations are invalid:";
    for (const auto& e : plan.errors) message += " " + e.message() + ";";
    message.pop_back();
    return Error{plan.errors.front().code() == Code::already_exists ? Code::already_exists : Code::invalid_argument,
                 std::move(message)};
  }
  auto impl = std::make_unique<internal::ApplicationImpl>();
  impl->encoded = std::move(plan.encoded);
  if (plan.placement == Placement::in_memory) {
    auto mediator = std::move(plan.mediator);
    plan_.reset();
    return std::unique_ptr<Application>(new Application(std::move(mediator), std::move(impl)));
  }
  if (&catga_replicated_engine == nullptr) {
    return Error{Code::failed_precondition,
                 "a durable or clustered application needs the catga::cluster library: link it, or build "
                 "with in_memory()"};
  }
  auto replicator = catga_replicated_engine(plan);
  auto mediator = std::move(plan.mediator);
  plan_.reset();
  if (!replicator) return replicator.error();
  impl->replicator = std::move(*replicator);
  return std::unique_ptr<Application>(new Application(std::move(mediator), std::move(impl)));
}

}  // namespace detail
}  // namespace catga
