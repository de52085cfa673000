// How the client side judges an attempt's outcome (command_retrier.hpp).
#include "cluster/command_retrier.hpp"

#include <gtest/gtest.h>

#include "cluster/replicated_state_machine.hpp"
#include "core/mediator.hpp"

using catga::Code;
using catga::internal::AttemptHistory;
using catga::internal::NextStep;
using catga::internal::next_step;
using catga::internal::ReplicatedStateMachine;
using catga::internal::AttemptOutcome;

namespace {
AttemptOutcome applied() {
  std::string out;
  catga::detail::encode_result(out, catga::Result<int>(1));
  return {Code::ok, out, 5};
}
AttemptOutcome session_unknown() { return {Code::ok, ReplicatedStateMachine::session_unknown_result(), 5}; }
}  // namespace

// After an attempt that may have applied, a later attempt's "nothing
// happened" used to become the caller's answer (503 / 429 / 500 for a
// command that may have applied).
TEST(RetryClassification, AfterAMaybeAppliedAttemptTheAnswerIsOutcomeUnknown) {
  for (Code later : {Code::unavailable, Code::resource_exhausted, Code::internal, Code::invalid_argument}) {
    AttemptHistory h;
    AttemptOutcome first{Code::deadline_exceeded, "leadership lost; outcome unknown", 0};
    ASSERT_EQ(next_step(h, first, false, true), NextStep::retry);
    EXPECT_TRUE(h.maybe_applied);
    AttemptOutcome second{later, "no", 0};
    // unavailable is retried while it can be; once it cannot, or for a
    // definite refusal, the answer is outcome unknown.
    const NextStep step = next_step(h, second, false, false);
    EXPECT_EQ(step, NextStep::finish) << to_string(later);
    EXPECT_EQ(second.code, Code::deadline_exceeded) << to_string(later);
  }
}

TEST(RetryClassification, WithoutAnEarlierMaybeTheRefusalStands) {
  for (Code code : {Code::resource_exhausted, Code::internal, Code::invalid_argument}) {
    AttemptHistory h;
    AttemptOutcome o{code, "no", 0};
    EXPECT_EQ(next_step(h, o, false, true), NextStep::finish);
    EXPECT_EQ(o.code, code);
  }
  AttemptHistory h;
  AttemptOutcome o{Code::unavailable, "not the leader", 0};
  EXPECT_EQ(next_step(h, o, false, true), NextStep::retry);
  EXPECT_EQ(next_step(h, o, false, false), NextStep::finish);
  EXPECT_EQ(o.code, Code::unavailable);
}

TEST(RetryClassification, ALaterAppliedAnswerWinsOverAnEarlierMaybe) {
  AttemptHistory h;
  AttemptOutcome first{Code::deadline_exceeded, "connection broken", 0};
  ASSERT_EQ(next_step(h, first, false, true), NextStep::retry);
  AttemptOutcome second = applied();
  EXPECT_EQ(next_step(h, second, false, true), NextStep::finish);
  EXPECT_EQ(second.code, Code::ok);
}

TEST(RetryClassification, StillInFlightAttemptCountsAsMaybeApplied) {
  AttemptHistory h{.maybe_applied = false, .in_flight = 1};
  AttemptOutcome o{Code::internal, "node stopped itself: disk", 0};
  EXPECT_EQ(next_step(h, o, false, true), NextStep::finish);
  EXPECT_EQ(o.code, Code::deadline_exceeded);
}

// An idle node's session expired and its next command answered "outcome
// unknown" although nothing had applied.
TEST(RetryClassification, SessionUnknownOnAFirstAttemptResendsUnderANewSession) {
  AttemptHistory h;
  AttemptOutcome o = session_unknown();
  EXPECT_EQ(next_step(h, o, true, true), NextStep::resend_in_new_session);
  // Earlier attempts that were definitely not appended do not change that.
  AttemptHistory refused;
  AttemptOutcome not_leader{Code::unavailable, "not the leader", 0};
  ASSERT_EQ(next_step(refused, not_leader, false, true), NextStep::retry);
  AttemptOutcome again = session_unknown();
  EXPECT_EQ(next_step(refused, again, true, true), NextStep::resend_in_new_session);
}

TEST(RetryClassification, SessionUnknownAfterAMaybeAppliedAttemptIsOutcomeUnknown) {
  AttemptHistory h;
  AttemptOutcome first{Code::deadline_exceeded, "leadership lost", 0};
  ASSERT_EQ(next_step(h, first, false, true), NextStep::retry);
  AttemptOutcome o = session_unknown();
  EXPECT_EQ(next_step(h, o, true, true), NextStep::finish);
  EXPECT_EQ(o.code, Code::deadline_exceeded);
}

TEST(RetryClassification, SessionUnknownIsAFlagNotAMessage) {
  EXPECT_TRUE(ReplicatedStateMachine::is_session_unknown(ReplicatedStateMachine::session_unknown_result()));
  // A handler's own error, whatever its message, is not the flag.
  std::string lookalike;
  catga::detail::encode_error_result(
      lookalike, catga::Error{Code::unavailable, "client session unknown (expired or never opened); this command was not applied"});
  EXPECT_FALSE(ReplicatedStateMachine::is_session_unknown(lookalike));
  std::string expired;
  catga::detail::encode_error_result(expired, catga::Error{Code::deadline_exceeded, "client session expired"});
  EXPECT_FALSE(ReplicatedStateMachine::is_session_unknown(expired));
  EXPECT_FALSE(ReplicatedStateMachine::is_session_unknown(applied().bytes));
  EXPECT_FALSE(ReplicatedStateMachine::is_session_unknown(""));
}
