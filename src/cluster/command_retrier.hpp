// How the client side of exactly-once (command_dispatcher.hpp) judges one
// attempt of a command: retry it, resend it under a new client session, or
// give the caller a final answer — and which answer. Pure decisions, no I/O;
// the dispatcher does what they say.
//
// The rules:
//   - `deadline_exceeded` from any attempt means that attempt may have
//     applied. From then on the caller's final answer is "outcome unknown"
//     (deadline_exceeded) unless a later attempt brings the applied result:
//     a later attempt's "nothing happened" (unavailable, resource_exhausted)
//     or `internal` (the node stopped itself) says nothing about the earlier
//     one, so it never becomes the final answer.
//   - `unavailable` (nothing happened) is retried until the deadline, as is
//     `deadline_exceeded` (the session table makes the retry safe).
//   - A "session unknown" answer (ReplicatedStateMachine::is_session_unknown:
//     the session expired or was evicted; this attempt was NOT applied) leads
//     to a resend under a new session when no earlier attempt may have applied
//     (none answered deadline_exceeded and none is still unanswered);
//     otherwise the answer is "outcome unknown".
//   - Anything else (a handler's result, a definite refusal) is final.
//
// An attempt's outcome is an AttemptOutcome, whether the attempt ran on
// this node or was forwarded: the peer protocol's wire type (peer::Outcome)
// stays at the peer channel's edge, where a forwarded answer is sent or
// arrives.
//
// Thread-safety: functions on values.
#pragma once

#include <cstdint>
#include <string>

#include "catga/result.hpp"

namespace catga::internal {

// What one attempt of a command produced: the state machine's encoded result
// and the entry's index (code ok), or an error code and its message.
struct AttemptOutcome {
  Code code = Code::ok;
  std::string bytes;        // the encoded result (ok) or the error message
  std::uint64_t index = 0;  // the applied entry's index (ok), else 0
};

// What one command's attempts have shown so far.
struct AttemptHistory {
  bool maybe_applied = false;  // some attempt answered deadline_exceeded
  unsigned in_flight = 0;      // attempts sent and not answered yet
};

enum class NextStep { retry, resend_in_new_session, finish };

// Folds one attempt's outcome into `history` (whose in_flight must already
// exclude that attempt) and says what to do; when the step is `finish`,
// `outcome` holds the caller's answer. `session_unknown`: the outcome is the
// state machine's flagged session-unknown answer. `can_retry`: the node is
// not stopping (the deadline is not checked here: the dispatcher's sweep
// answers a command whose deadline passed, whatever its attempts say).
NextStep next_step(AttemptHistory& history, AttemptOutcome& outcome, bool session_unknown, bool can_retry);

// The caller's answer when the command is given up without a usable answer
// (deadline passed, node stopped): `last` is the reason for giving up.
AttemptOutcome final_outcome(const AttemptHistory& history, AttemptOutcome last);

}  // namespace catga::internal
