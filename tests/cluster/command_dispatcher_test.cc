// The retry/forward loop (command_dispatcher.hpp) over a fake node: no Raft,
// no sockets. Attempts are recorded and answered by hand, the timers are a
// queue stepped by hand, and the deadline passes when a test says so — no
// sleeps, no timing in the asserts. Each test checks the exact code the
// caller gets and that its `done` ran exactly once.
#include "cluster/command_dispatcher.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cluster/node_stopped.hpp"

using catga::Code;
using catga::Error;
using catga::Result;
using catga::internal::AttemptOutcome;
using catga::internal::CommandDispatcher;
using Route = CommandDispatcher::Route;
using Clock = CommandDispatcher::Clock;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kSessionUnknown = "session-unknown";
const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(1);
const Clock::time_point kDeadline = kStart + std::chrono::seconds(5);

// One attempt sent: to this node's log (address empty) or to a leader.
struct Attempt {
  std::string address;
  std::string record;
  CommandDispatcher::OutcomeDone done;

  void answer(Code code, std::string bytes = "", std::uint64_t index = 0) {
    done(AttemptOutcome{code, std::move(bytes), index});
  }
};

// What a command's caller got, and how often.
struct Answer {
  int calls = 0;
  std::optional<Result<std::string>> result;
  std::uint64_t index = 0;

  CommandDispatcher::Done callback() {
    return [this](Result<std::string> r, std::uint64_t i) {
      ++calls;
      result = std::move(r);
      index = i;
    };
  }
  Code code() const { return result->has_value() ? Code::ok : result->error().code(); }
  std::string message() const { return result->has_value() ? std::string() : std::string(result->error().message()); }
};

class CommandDispatcherTest : public ::testing::Test {
 protected:
  Route route = Route::to_local();
  // In the order sent; a deque, so an answer may send the next attempt.
  std::deque<Attempt> attempts;
  std::vector<std::pair<milliseconds, catga::detail::UniqueFunction<void()>>> timers;
  std::vector<milliseconds> delays;  // every timer ever set
  std::vector<std::pair<std::uint64_t, std::uint64_t>> completed;
  std::vector<std::uint64_t> dropped;
  std::uint64_t next_session = 2;
  int resends = 0;

  CommandDispatcher dispatcher{node()};

  CommandDispatcher::Node node() {
    CommandDispatcher::Node n;
    n.route = [this] { return route; };
    n.propose_local = [this](std::string record, CommandDispatcher::OutcomeDone done) {
      attempts.push_back({"", std::move(record), std::move(done)});
    };
    n.forward = [this](const std::string& address, std::string record, CommandDispatcher::OutcomeDone done) {
      attempts.push_back({address, std::move(record), std::move(done)});
    };
    n.after = [this](milliseconds delay, catga::detail::UniqueFunction<void()> f) {
      delays.push_back(delay);
      timers.emplace_back(delay, std::move(f));
    };
    n.is_session_unknown = [](std::string_view bytes) { return bytes == kSessionUnknown; };
    n.completed = [this](std::uint64_t session, std::uint64_t sequence) { completed.emplace_back(session, sequence); };
    n.drop = [this](std::uint64_t session) { dropped.push_back(session); };
    // As the session client does: the same command again, under its next session.
    n.resend = [this](std::string record, Clock::time_point deadline, CommandDispatcher::Done done) {
      ++resends;
      dispatcher.dispatch(std::move(record) + " (resent)", deadline, next_session++, 1, std::move(done));
    };
    return n;
  }

  // Runs the timers set so far (not the ones they set).
  void run_timers() {
    auto due = std::exchange(timers, {});
    for (auto& [delay, f] : due) f();
  }

  // Sends command (session 1, sequence 1) with `answer` as its caller.
  void send(Answer& answer) { dispatcher.dispatch("cmd", kDeadline, 1, 1, answer.callback()); }
};

TEST_F(CommandDispatcherTest, AnAnswerOfTheFirstAttemptIsTheCallersAndTheSequenceIsCompleted) {
  Answer a;
  send(a);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].address, "");
  EXPECT_EQ(attempts[0].record, "cmd");
  attempts[0].answer(Code::ok, "result", 7);
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::ok);
  EXPECT_EQ(**a.result, "result");
  EXPECT_EQ(a.index, 7u);
  EXPECT_EQ(completed, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 1}}));
  EXPECT_EQ(dispatcher.retried(), 0u);
  EXPECT_EQ(dispatcher.forwarded(), 0u);
}

// Issue 13 item 5: once an attempt may have applied, a later attempt's "nothing
// happened" is no answer about it.
TEST_F(CommandDispatcherTest, ATimedOutAttemptThenUnavailableRetriesUntilTheDeadlineAndAnswersOutcomeUnknown) {
  Answer a;
  send(a);
  attempts[0].answer(Code::deadline_exceeded, "leadership lost");
  ASSERT_EQ(timers.size(), 1u);  // retried after a backoff
  run_timers();
  ASSERT_EQ(attempts.size(), 2u);
  attempts[1].answer(Code::unavailable, "not the leader");
  EXPECT_EQ(a.calls, 0);
  ASSERT_EQ(timers.size(), 1u);  // retried again

  dispatcher.expire_due(kDeadline - milliseconds(1));
  EXPECT_EQ(a.calls, 0);  // not before its deadline
  dispatcher.expire_due(kDeadline);
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::deadline_exceeded) << a.message();
  EXPECT_NE(a.message().find("outcome unknown"), std::string::npos) << a.message();

  run_timers();  // the pending retry finds nothing to send
  EXPECT_EQ(attempts.size(), 2u);
  EXPECT_EQ(a.calls, 1);
  EXPECT_EQ(dispatcher.retried(), 1u);
}

class AfterAMaybeAppliedAttempt : public CommandDispatcherTest, public ::testing::WithParamInterface<Code> {};

// A retry's definite refusal — 429, 503-like, `internal`, or failed_precondition
// from a node that stopped itself — is not the answer: the first attempt may
// have applied.
TEST_P(AfterAMaybeAppliedAttempt, ARetrysRefusalIsAnsweredAsOutcomeUnknown) {
  Answer a;
  send(a);
  attempts[0].answer(Code::deadline_exceeded, "connection broken after the write");
  run_timers();
  ASSERT_EQ(attempts.size(), 2u);
  attempts[1].answer(GetParam(), "the retry's refusal");
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::deadline_exceeded) << a.message();
  EXPECT_NE(a.message().find("may have applied"), std::string::npos) << a.message();
  EXPECT_TRUE(timers.empty());
  dispatcher.expire_due(kDeadline);
  EXPECT_EQ(a.calls, 1);
}

INSTANTIATE_TEST_SUITE_P(Refusals, AfterAMaybeAppliedAttempt,
                         ::testing::Values(Code::resource_exhausted, Code::internal, Code::failed_precondition),
                         [](const auto& info) { return std::string(catga::to_string(info.param)); });

// Without any maybe-applied attempt the same refusal is the answer.
TEST_F(CommandDispatcherTest, ARefusalOfTheFirstAttemptIsTheAnswer) {
  Answer a;
  send(a);
  attempts[0].answer(Code::resource_exhausted, "too many commands");
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::resource_exhausted);
  EXPECT_EQ(a.message(), "too many commands");
  EXPECT_TRUE(timers.empty());
}

TEST_F(CommandDispatcherTest, AfterAMaybeAppliedAttemptANodeThatStoppedItselfIsNotRetriedOnAndTheAnswerIsUnknown) {
  Answer a;
  send(a);
  attempts[0].answer(Code::deadline_exceeded, "leadership lost");
  route = Route::stopped_with(catga::internal::node_stopped_itself("disk full"));
  run_timers();
  EXPECT_EQ(attempts.size(), 1u);  // nothing sent to the stopped node
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::deadline_exceeded) << a.message();
  EXPECT_NE(a.message().find("may have applied"), std::string::npos) << a.message();
  EXPECT_EQ(dispatcher.retried(), 1u);
}

TEST_F(CommandDispatcherTest, WithNothingMaybeAppliedANodeThatStoppedItselfAnswersWithItsStopError) {
  Answer a;
  send(a);
  attempts[0].answer(Code::unavailable, "leadership lost before the append");
  route = Route::stopped_with(catga::internal::node_stopped_itself("disk full"));
  run_timers();
  EXPECT_EQ(attempts.size(), 1u);
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::failed_precondition);
  EXPECT_EQ(a.message(), "node stopped: disk full");
  EXPECT_TRUE(catga::internal::is_node_stopped_itself(a.result->error()));
}

// A first attempt on a node that stopped itself still goes to its log, which
// answers with its failure.
TEST_F(CommandDispatcherTest, AFirstAttemptOnANodeThatStoppedItselfIsAnsweredByItsLog) {
  route = Route::stopped_with(catga::internal::node_stopped_itself("disk full"));
  Answer a;
  send(a);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].address, "");
  attempts[0].answer(Code::failed_precondition, "node stopped: disk full");
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::failed_precondition);
  EXPECT_TRUE(timers.empty());
}

TEST_F(CommandDispatcherTest, SessionUnknownWithNothingMaybeAppliedIsResentUnderANewSessionAndSucceeds) {
  Answer a;
  send(a);
  attempts[0].answer(Code::ok, std::string(kSessionUnknown), 4);
  EXPECT_EQ(dropped, std::vector<std::uint64_t>{1});
  EXPECT_EQ(resends, 1);
  EXPECT_EQ(a.calls, 0);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[1].record, "cmd (resent)");
  attempts[1].answer(Code::ok, "result", 9);
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::ok);
  EXPECT_EQ(**a.result, "result");
  EXPECT_EQ(a.index, 9u);
  // Only the new session's sequence is completed; the old session was dropped.
  EXPECT_EQ(completed, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{2, 1}}));
  EXPECT_EQ(dispatcher.retried(), 1u);
}

TEST_F(CommandDispatcherTest, SessionUnknownAfterATimedOutAttemptIsOutcomeUnknownAndNotResent) {
  Answer a;
  send(a);
  attempts[0].answer(Code::deadline_exceeded, "leadership lost");
  run_timers();
  ASSERT_EQ(attempts.size(), 2u);
  attempts[1].answer(Code::ok, std::string(kSessionUnknown), 4);
  EXPECT_EQ(resends, 0);
  EXPECT_EQ(dropped, std::vector<std::uint64_t>{1});
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::deadline_exceeded) << a.message();
  EXPECT_NE(a.message().find("outcome is unknown"), std::string::npos) << a.message();
  EXPECT_EQ(attempts.size(), 2u);
}

// A keep-alive (sequence 0) whose session is unknown is not resent: the
// session is dropped, the next command opens a new one.
TEST_F(CommandDispatcherTest, AKeepAliveWhoseSessionIsUnknownIsNotResent) {
  Answer a;
  dispatcher.dispatch("keep-alive", kDeadline, 1, 0, a.callback());
  attempts[0].answer(Code::ok, std::string(kSessionUnknown), 4);
  EXPECT_EQ(resends, 0);
  EXPECT_EQ(dropped, std::vector<std::uint64_t>{1});
  EXPECT_EQ(a.calls, 1);
}

TEST_F(CommandDispatcherTest, WithNoLeaderKnownItWaitsAndForwardsOnceOneIs) {
  route = Route::nowhere();
  Answer a;
  send(a);
  EXPECT_TRUE(attempts.empty());
  ASSERT_EQ(timers.size(), 1u);
  run_timers();  // still no leader
  EXPECT_TRUE(attempts.empty());
  ASSERT_EQ(timers.size(), 1u);

  route = Route::to_leader("10.0.0.2:7001");
  run_timers();
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].address, "10.0.0.2:7001");
  EXPECT_EQ(attempts[0].record, "cmd");
  attempts[0].answer(Code::ok, "result", 3);
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::ok);
  EXPECT_EQ(dispatcher.forwarded(), 1u);
  EXPECT_EQ(dispatcher.retried(), 2u);
  EXPECT_TRUE(timers.empty());
}

TEST_F(CommandDispatcherTest, TheBackoffDoublesUpToItsCap) {
  route = Route::nowhere();
  Answer a;
  send(a);
  for (int i = 0; i < 9; ++i) run_timers();
  const std::vector<milliseconds> expected{milliseconds(5),   milliseconds(10),  milliseconds(20),  milliseconds(40),
                                           milliseconds(80),  milliseconds(160), milliseconds(200), milliseconds(200),
                                           milliseconds(200), milliseconds(200)};
  EXPECT_EQ(delays, expected);
  EXPECT_EQ(CommandDispatcher::kFirstBackoff, milliseconds(5));
  EXPECT_EQ(CommandDispatcher::kMaxBackoff, milliseconds(200));

  dispatcher.expire_due(kDeadline);  // never sent anywhere: nothing happened
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::unavailable);
  EXPECT_EQ(a.message(), "no leader accepted the command before the deadline");
}

TEST_F(CommandDispatcherTest, StopWithCommandsInFlightAnswersUnknownOrUnavailableByTheirHistory) {
  Answer in_flight, timed_out, waiting;
  dispatcher.dispatch("in flight", kDeadline, 1, 1, in_flight.callback());
  dispatcher.dispatch("timed out", kDeadline, 1, 2, timed_out.callback());
  attempts[1].answer(Code::deadline_exceeded, "leadership lost");
  route = Route::nowhere();
  run_timers();  // "timed out" now waits for a leader, nothing in flight
  dispatcher.dispatch("waiting", kDeadline, 1, 3, waiting.callback());
  ASSERT_EQ(attempts.size(), 2u);

  dispatcher.stop();
  dispatcher.fail_remaining();
  ASSERT_EQ(in_flight.calls, 1);
  EXPECT_EQ(in_flight.code(), Code::deadline_exceeded);
  EXPECT_EQ(in_flight.message(), "node stopped; outcome unknown");
  ASSERT_EQ(timed_out.calls, 1);
  EXPECT_EQ(timed_out.code(), Code::deadline_exceeded);
  EXPECT_EQ(timed_out.message(), "node stopped; outcome unknown");
  ASSERT_EQ(waiting.calls, 1);
  EXPECT_EQ(waiting.code(), Code::unavailable);
  EXPECT_EQ(waiting.message(), "node stopped");

  // What still arrives is ignored.
  attempts[0].answer(Code::ok, "late", 5);
  run_timers();
  dispatcher.expire_due(kDeadline);
  EXPECT_EQ(in_flight.calls, 1);
  EXPECT_EQ(timed_out.calls, 1);
  EXPECT_EQ(waiting.calls, 1);
}

// Once stopping, an answer that would be retried is the final one.
TEST_F(CommandDispatcherTest, WhileStoppingAnUnavailableAnswerIsFinalNotRetried) {
  Answer a;
  send(a);
  dispatcher.stop();
  attempts[0].answer(Code::unavailable, "node stopping");
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::unavailable);
  EXPECT_EQ(a.message(), "node stopping");
  EXPECT_TRUE(timers.empty());
}

TEST_F(CommandDispatcherTest, AnAnswerAfterTheDeadlineFinishedTheCommandIsIgnored) {
  Answer a;
  send(a);
  dispatcher.expire_due(kDeadline + milliseconds(1));
  ASSERT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::deadline_exceeded);  // an attempt was in flight: it may apply
  EXPECT_EQ(a.message(), "deadline passed before an answer came; outcome unknown");
  EXPECT_EQ(completed, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{1, 1}}));

  attempts[0].answer(Code::ok, "applied after all", 8);
  EXPECT_EQ(a.calls, 1);
  EXPECT_EQ(a.code(), Code::deadline_exceeded);
  EXPECT_EQ(completed.size(), 1u);
}

}  // namespace
