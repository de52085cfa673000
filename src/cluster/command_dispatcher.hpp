// CommandDispatcher: carries each command a node sends to a definite answer —
// the client side's retry/forward loop (ReplicatedNode wires it). It keeps the
// state of every command in flight: where each attempt goes (the local Raft
// log when this node leads, else the leader's peer channel, else nowhere until
// an election names a leader), the backoff between attempts, and the deadline
// after which the caller is answered anyway. How one attempt's outcome is
// judged — retry, resend under a new client session, final answer — is
// command_retrier.hpp's; SessionClient (session_client.hpp) numbers the
// commands and hands them here through dispatch().
//
// The caller's answer once an attempt may have applied (it answered
// deadline_exceeded, or is still unanswered) is "outcome unknown"
// (deadline_exceeded), never a later attempt's unavailable, resource_exhausted
// or `internal`; a retry never goes to a local node that stopped itself.
//
// It knows neither Raft, nor the peer channel, nor the state machine: what it
// needs from the node is a Node of callbacks (where an attempt goes now, the
// local proposal, the forward, a timer, the session client's bookkeeping).
// Time comes in from outside (expire_due's `now`), so a test steps it by hand.
//
// Threading: every method may be called from any thread; a mutex guards the
// commands in flight, and every Node callback and every `done` is called
// outside it (a proposal or a forward may complete at once, on the calling
// thread, and call back in).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "catga/application.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/tracing.hpp"
#include "cluster/command_retrier.hpp"

namespace catga::internal {

class CommandDispatcher {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = EncodedDone;
  using OutcomeDone = detail::UniqueFunction<void(AttemptOutcome)>;

  // The backoff before a retry: kFirstBackoff after the first attempt,
  // doubled after each further one, at most kMaxBackoff.
  static constexpr std::chrono::milliseconds kFirstBackoff{5};
  static constexpr std::chrono::milliseconds kMaxBackoff{200};

  // Where the next attempt of a command goes.
  struct Route {
    enum class Kind {
      local,      // this node leads (or is alone): its own log
      leader,     // forwarded to the leader's peer channel at `address`
      no_leader,  // no leader known yet: wait and try again
      stopped,    // this node stopped itself with `error`: a first attempt still goes to
                  // its log (which answers with its failure); a retry does not, the
                  // command is answered with `error` or "outcome unknown"
    };
    Kind kind = Kind::no_leader;
    std::string address;         // leader
    std::optional<Error> error;  // stopped

    static Route to_local() { return {Kind::local, {}, std::nullopt}; }
    static Route to_leader(std::string address) { return {Kind::leader, std::move(address), std::nullopt}; }
    static Route nowhere() { return {Kind::no_leader, {}, std::nullopt}; }
    static Route stopped_with(Error error) { return {Kind::stopped, {}, std::move(error)}; }
  };

  // What the dispatcher needs from its node. Every member must be set.
  struct Node {
    // Where an attempt sent now goes.
    detail::UniqueFunction<Route()> route;
    // Appends `record` to this node's log — or refuses it before the append —
    // and calls `done` once with the outcome (possibly at once).
    detail::UniqueFunction<void(std::string record, OutcomeDone done)> propose_local;
    // Sends `record` to the leader at `address`; `done` once with its outcome.
    detail::UniqueFunction<void(const std::string& address, std::string record, OutcomeDone done)> forward;
    // Runs `f` after `delay` (a retry's backoff), on a thread of the node's.
    detail::UniqueFunction<void(std::chrono::milliseconds delay, detail::UniqueFunction<void()> f)> after;
    // True for the state machine's "session unknown" answer (an ok outcome's bytes).
    detail::UniqueFunction<bool(std::string_view bytes)> is_session_unknown;
    // The session client's: (session, sequence) has its answer; `session` is
    // unknown to the leader; send `record`'s command again under a new
    // session, `done` getting its answer.
    detail::UniqueFunction<void(std::uint64_t session, std::uint64_t sequence)> completed;
    detail::UniqueFunction<void(std::uint64_t session)> drop;
    detail::UniqueFunction<void(std::string record, Clock::time_point deadline, Done done)> resend;
  };

  explicit CommandDispatcher(Node node) : node_(std::move(node)) {}
  CommandDispatcher(const CommandDispatcher&) = delete;
  CommandDispatcher& operator=(const CommandDispatcher&) = delete;

  // Sends `record` until it has a definite answer or `deadline` passed, and
  // then calls `done` exactly once (SessionClient::Dispatch). `session` and
  // `sequence` are what the record carries (0 and 0 for a record outside any
  // session; sequence 0 is never resent); `span`, if any, is the forward hop's
  // and ends with the answer.
  void dispatch(std::string record, Clock::time_point deadline, std::uint64_t session, std::uint64_t sequence,
                Done done, std::unique_ptr<Span> span = nullptr);

  // Answers every command whose deadline is at or before `now`: "outcome
  // unknown" (deadline_exceeded) when an attempt may have applied, else
  // unavailable. The node's sweep calls it.
  void expire_due(Clock::time_point now);

  // From now on no outcome is retried or resent: it becomes the answer.
  void stop();
  // Answers every command still in flight: "node stopped; outcome unknown"
  // (deadline_exceeded) when an attempt may have applied, else unavailable.
  // Outcomes that arrive later are ignored.
  void fail_remaining();

  std::uint64_t forwarded() const { return forwarded_.load(std::memory_order_relaxed); }
  std::uint64_t retried() const { return retried_.load(std::memory_order_relaxed); }

 private:
  struct Outstanding {
    std::string record;
    Done done;
    Clock::time_point deadline;
    std::uint64_t session = 0;
    std::uint64_t sequence = 0;
    unsigned attempts = 0;
    AttemptHistory history;
    std::unique_ptr<Span> span;  // the forward hop's, when traced

    // Given up now, could it still have applied?
    bool outcome_unknown() const { return history.maybe_applied || history.in_flight > 0; }
  };

  void attempt(std::uint64_t id);
  void on_outcome(std::uint64_t id, AttemptOutcome outcome);
  void resend(Outstanding o);
  void finish(Outstanding o, AttemptOutcome outcome);
  void retry_later(std::uint64_t id);
  void expire(std::uint64_t id, Clock::time_point now);

  Node node_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> forwarded_{0};  // attempts sent to a leader
  std::atomic<std::uint64_t> retried_{0};    // attempts after a command's first, and resends

  // Commands awaiting a definite answer (under mu_).
  std::mutex mu_;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, Outstanding> outstanding_;
};

}  // namespace catga::internal
