#include "cluster/command_retrier.hpp"

#include <string>

namespace catga::internal {

AttemptOutcome final_outcome(const AttemptHistory& history, AttemptOutcome last) {
  if (last.code == Code::ok || last.code == Code::deadline_exceeded) return last;
  if (!history.maybe_applied && history.in_flight == 0) return last;
  return {Code::deadline_exceeded,
          "an earlier attempt of this command may have applied; the outcome is unknown (the last attempt: " +
              std::string(to_string(last.code)) + ": " + last.bytes + ")",
          0};
}

NextStep next_step(AttemptHistory& history, AttemptOutcome& outcome, bool session_unknown, bool can_retry) {
  switch (outcome.code) {
    case Code::ok:
      if (!session_unknown) return NextStep::finish;
      if (!history.maybe_applied && history.in_flight == 0) {
        if (can_retry) return NextStep::resend_in_new_session;
        outcome = {Code::unavailable, "client session expired and the node is stopping; nothing was applied", 0};
        return NextStep::finish;
      }
      outcome = {Code::deadline_exceeded,
                 "client session expired while an earlier attempt of this command may have applied; the outcome is "
                 "unknown",
                 0};
      return NextStep::finish;
    case Code::deadline_exceeded:  // leadership lost or connection broken: it may still apply
      history.maybe_applied = true;
      [[fallthrough]];
    case Code::unavailable:  // nothing happened (not the leader, no leader, stopping)
      if (can_retry) return NextStep::retry;
      break;
    default:
      break;
  }
  outcome = final_outcome(history, std::move(outcome));
  return NextStep::finish;
}

}  // namespace catga::internal
