#include "cluster/command_dispatcher.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace catga::internal {

void CommandDispatcher::dispatch(std::string record, Clock::time_point deadline, std::uint64_t session,
                                 std::uint64_t sequence, Done done, std::unique_ptr<Span> span) {
  std::uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = ++next_id_;
    auto& o = outstanding_.emplace(id, Outstanding{std::move(record), std::move(done), deadline, session, sequence})
                  .first->second;
    o.span = std::move(span);
  }
  attempt(id);
}

// Sends outstanding command `id` once more, where the node's route says.
void CommandDispatcher::attempt(std::uint64_t id) {
  Route route = node_.route();
  std::string record;
  {
    std::unique_lock lock(mu_);
    auto it = outstanding_.find(id);
    if (it == outstanding_.end()) return;
    if (it->second.attempts++ > 0) {
      retried_.fetch_add(1, std::memory_order_relaxed);
      // Never retry on a local node that has stopped itself: it would answer
      // "node stopped" at once, hiding an earlier attempt's unknown outcome
      // (final_outcome keeps it).
      if (route.kind == Route::Kind::stopped) {
        Outstanding o = std::move(it->second);
        outstanding_.erase(it);
        lock.unlock();
        auto outcome = final_outcome(o.history, {route.error->code(), std::string(route.error->message()), 0});
        return finish(std::move(o), std::move(outcome));
      }
    }
    if (route.kind != Route::Kind::no_leader) {
      it->second.history.in_flight++;
      record = it->second.record;
    }
  }
  switch (route.kind) {
    case Route::Kind::no_leader:  // wait for an election
      return retry_later(id);
    case Route::Kind::local:
    case Route::Kind::stopped:  // a first attempt: the stopped node answers it at once, with its failure
      return node_.propose_local(std::move(record), [this, id](AttemptOutcome o) { on_outcome(id, std::move(o)); });
    case Route::Kind::leader:
      forwarded_.fetch_add(1, std::memory_order_relaxed);
      return node_.forward(route.address, std::move(record),
                           [this, id](AttemptOutcome o) { on_outcome(id, std::move(o)); });
  }
}

void CommandDispatcher::on_outcome(std::uint64_t id, AttemptOutcome outcome) {
  std::unique_lock lock(mu_);
  auto it = outstanding_.find(id);
  if (it == outstanding_.end()) return;  // already answered (another attempt, the deadline, the stop)
  Outstanding& o = it->second;
  if (o.history.in_flight > 0) o.history.in_flight--;
  const bool session_unknown = outcome.code == Code::ok && node_.is_session_unknown(outcome.bytes);
  const auto step = next_step(o.history, outcome, session_unknown, !stopping_);
  if (step == NextStep::retry) {
    lock.unlock();
    return retry_later(id);
  }
  Outstanding done = std::move(it->second);
  outstanding_.erase(it);
  lock.unlock();
  if (session_unknown) node_.drop(done.session);
  // A keep-alive (sequence 0) is not resent: the next command opens a session.
  if (step == NextStep::resend_in_new_session && done.sequence != 0) return resend(std::move(done));
  finish(std::move(done), std::move(outcome));
}

// Sends a command again as a new one, under the node's next session: its
// session is gone and no earlier attempt of it can have applied.
void CommandDispatcher::resend(Outstanding o) {
  retried_.fetch_add(1, std::memory_order_relaxed);
  if (o.span) o.span->end(Error{Code::unavailable, "session unknown to the leader; resent under a new one"}, 0);
  node_.resend(std::move(o.record), o.deadline, std::move(o.done));
}

void CommandDispatcher::finish(Outstanding o, AttemptOutcome outcome) {
  node_.completed(o.session, o.sequence);
  if (o.span) [[unlikely]] {
    o.span->end(outcome.code == Code::ok ? Result<void>() : Result<void>(Error{outcome.code, outcome.bytes}),
                outcome.code == Code::ok ? outcome.index : 0);
  }
  if (outcome.code == Code::ok)
    o.done(std::move(outcome.bytes), outcome.index);
  else
    o.done(Error{outcome.code, std::move(outcome.bytes)}, 0);
}

void CommandDispatcher::retry_later(std::uint64_t id) {
  std::chrono::milliseconds backoff = kFirstBackoff;
  {
    std::lock_guard lock(mu_);
    auto it = outstanding_.find(id);
    if (it == outstanding_.end()) return;
    for (unsigned i = 1; i < it->second.attempts && backoff < kMaxBackoff; ++i) backoff *= 2;
    backoff = std::min(backoff, kMaxBackoff);
  }
  node_.after(backoff, [this, id] { attempt(id); });
}

// Completes `id`, if its deadline is at or before `now`, with the error its
// history calls for.
void CommandDispatcher::expire(std::uint64_t id, Clock::time_point now) {
  Outstanding o;
  {
    std::lock_guard lock(mu_);
    auto it = outstanding_.find(id);
    if (it == outstanding_.end() || now < it->second.deadline) return;
    o = std::move(it->second);
    outstanding_.erase(it);
  }
  const bool unknown = o.outcome_unknown();
  finish(std::move(o),
         unknown ? AttemptOutcome{Code::deadline_exceeded, "deadline passed before an answer came; outcome unknown", 0}
                 : AttemptOutcome{Code::unavailable, "no leader accepted the command before the deadline", 0});
}

void CommandDispatcher::expire_due(Clock::time_point now) {
  std::vector<std::uint64_t> expired;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, o] : outstanding_)
      if (now >= o.deadline) expired.push_back(id);
  }
  for (auto id : expired) expire(id, now);
}

void CommandDispatcher::stop() { stopping_ = true; }

void CommandDispatcher::fail_remaining() {
  std::unordered_map<std::uint64_t, Outstanding> left;
  {
    std::lock_guard lock(mu_);
    left.swap(outstanding_);
  }
  for (auto& [id, o] : left) {
    o.done(o.outcome_unknown() ? Error{Code::deadline_exceeded, "node stopped; outcome unknown"}
                               : Error{Code::unavailable, "node stopped"},
           0);
  }
}

}  // namespace catga::internal
