// The client side of exactly-once (session_client.hpp): opening the session,
// numbering commands, the floor, keep-alives and a dropped session — with a
// dispatch that records what would go out instead of sending it.
#include "cluster/session_client.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "core/mediator.hpp"
#include "cluster/envelope.hpp"
#include "cluster/replicated_state_machine.hpp"

using catga::Code;
using catga::Error;
using catga::MessageKind;
using catga::Result;
using catga::TraceContext;
using catga::internal::decode_envelope;
using catga::internal::kKeepAliveRecord;
using catga::internal::kOpenSessionRecord;
using catga::internal::SessionClient;
using Clock = SessionClient::Clock;

namespace {

struct Sent {
  std::string record;
  std::uint64_t session = 0;
  std::uint64_t sequence = 0;
  SessionClient::Done done;
  bool has_span = false;

  std::string wire_name() const { return std::string(decode_envelope(record)->wire_name); }
  std::uint64_t floor() const { return decode_envelope(record)->floor; }
  std::uint64_t envelope_session() const { return decode_envelope(record)->session; }
  std::uint64_t envelope_sequence() const { return decode_envelope(record)->sequence; }
};

std::string encoded_session(std::uint64_t id) {
  std::string out;
  catga::detail::encode_result(out, Result<std::uint64_t>(id));
  return out;
}

// What the client's callers got: the answer per command, in order.
struct Answers {
  std::vector<Result<std::string>> got;
  SessionClient::Done next() {
    return [this](Result<std::string> r, std::uint64_t) { got.push_back(std::move(r)); };
  }
};

class SessionClientTest : public ::testing::Test {
 protected:
  std::vector<Sent> sent;
  int traced_calls = 0;
  SessionClient client{[this](std::string record, Clock::time_point, std::uint64_t session, std::uint64_t sequence,
                              SessionClient::Done done, std::unique_ptr<catga::Span> span) {
                         sent.push_back(Sent{std::move(record), session, sequence, std::move(done), span != nullptr});
                       },
                       [this](std::string_view, const TraceContext& trace) {
                         ++traced_calls;
                         return SessionClient::Traced{trace, nullptr};
                       }};
  Answers answers;

  // Answers what went out as sent[i] (taken out first: the answer may send more).
  void answer(std::size_t i, Result<std::string> result, std::uint64_t index) {
    auto done = std::move(sent[i].done);
    done(std::move(result), index);
  }

  void send(std::string_view name = "Deposit") {
    client.submit(MessageKind::command, name, "payload", "", Clock::now() + std::chrono::seconds(5), {},
                  answers.next());
  }
  // Opens session `id`: the first command's opening record answered.
  void open(std::uint64_t id) {
    send();
    ASSERT_EQ(sent.size(), 1u);
    ASSERT_EQ(sent[0].wire_name(), kOpenSessionRecord);
    answer(0, encoded_session(id), 1);
    sent.erase(sent.begin());
  }
};

}  // namespace

TEST_F(SessionClientTest, TheFirstCommandOpensTheSessionAndCommandsWaitForIt) {
  send("A");
  send("B");
  ASSERT_EQ(sent.size(), 1u) << "one opening, however many commands wait";
  EXPECT_EQ(sent[0].wire_name(), kOpenSessionRecord);
  EXPECT_EQ(sent[0].session, 0u);
  EXPECT_EQ(sent[0].sequence, 0u);

  answer(0, encoded_session(7), 1);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[1].wire_name(), "A");
  EXPECT_EQ(sent[2].wire_name(), "B");
  for (std::size_t i : {1u, 2u}) {
    EXPECT_EQ(sent[i].session, 7u);
    EXPECT_EQ(sent[i].envelope_session(), 7u);
    EXPECT_EQ(sent[i].sequence, i);
    EXPECT_EQ(sent[i].envelope_sequence(), i);
    EXPECT_EQ(sent[i].floor(), 1u);
  }
}

TEST_F(SessionClientTest, TheFloorIsTheLowestSequenceStillAwaited) {
  open(7);  // sequence 1 goes out with the opening's answer
  send();
  send();
  ASSERT_EQ(sent.size(), 3u);
  client.completed(7, 2);
  send();
  EXPECT_EQ(sent.back().sequence, 4u);
  EXPECT_EQ(sent.back().floor(), 1u) << "1 is still awaited";
  client.completed(7, 1);
  send();
  EXPECT_EQ(sent.back().floor(), 3u);
  // Another session's completion, or one outside the window, moves nothing.
  client.completed(8, 3);
  client.completed(7, 99);
  send();
  EXPECT_EQ(sent.back().floor(), 3u);
}

TEST_F(SessionClientTest, AFailedOpeningFailsTheWaitingCommandsAndTheNextCommandOpensAgain) {
  send();
  send();
  ASSERT_EQ(sent.size(), 1u);
  answer(0, Error{Code::unavailable, "no leader"}, 0);
  ASSERT_EQ(answers.got.size(), 2u);
  for (const auto& a : answers.got) {
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code(), Code::unavailable);
  }
  send();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].wire_name(), kOpenSessionRecord);
}

TEST_F(SessionClientTest, ADroppedSessionIsReopenedByTheNextCommand) {
  open(7);
  client.drop(8);  // not this client's session: kept
  send();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].session, 7u);
  client.drop(7);
  send();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].wire_name(), kOpenSessionRecord);
  answer(2, encoded_session(9), 2);
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[3].session, 9u);
  EXPECT_EQ(sent[3].sequence, 1u) << "a new session numbers from 1";
  EXPECT_EQ(sent[3].floor(), 1u);
}

TEST_F(SessionClientTest, AKeepAliveGoesOutOnlyAfterSilenceAndOneAtATime) {
  const auto silence = catga::internal::keep_alive_every();
  client.keep_alive(Clock::now() + silence * 2);
  EXPECT_TRUE(sent.empty()) << "no session, nothing to keep alive";

  open(7);
  ASSERT_EQ(sent.size(), 1u);  // the command that opened it
  client.completed(7, 1);
  client.keep_alive(Clock::now());
  EXPECT_EQ(sent.size(), 1u) << "a command just went out";

  const auto later = Clock::now() + silence * 2;
  client.keep_alive(later);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].wire_name(), kKeepAliveRecord);
  EXPECT_EQ(sent[1].session, 7u);
  EXPECT_EQ(sent[1].sequence, 0u);
  EXPECT_EQ(sent[1].floor(), 2u);

  client.keep_alive(later + silence * 2);
  EXPECT_EQ(sent.size(), 2u) << "one keep-alive out at a time";
  answer(1, std::string(), 3);
  client.keep_alive(later + silence * 2);
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[2].wire_name(), kKeepAliveRecord);
}

TEST_F(SessionClientTest, OnlyATracedCommandAsksForItsTrace) {
  open(7);
  EXPECT_EQ(traced_calls, 0);
  TraceContext trace;
  trace.trace_id[0] = 1;
  trace.span_id[0] = 2;
  client.submit(MessageKind::command, "Deposit", "payload", "", Clock::now() + std::chrono::seconds(5), trace,
                answers.next());
  EXPECT_EQ(traced_calls, 1);
  EXPECT_EQ(decode_envelope(sent.back().record)->trace, trace);
}

TEST_F(SessionClientTest, StoppingFailsTheCommandsWaitingForTheSession) {
  send();
  send();
  client.fail_waiting(Error{Code::unavailable, "node stopped"});
  ASSERT_EQ(answers.got.size(), 2u);
  EXPECT_EQ(answers.got[0].error().code(), Code::unavailable);
  // The opening's late answer finds nobody waiting.
  answer(0, encoded_session(7), 1);
  EXPECT_EQ(answers.got.size(), 2u);
  EXPECT_EQ(sent.size(), 1u);
}
