#include "cluster/session_table.hpp"

#include <gtest/gtest.h>

#include "catga/application.hpp"
#include "catga/testing.hpp"

using catga::Code;
using catga::internal::SessionTable;
using namespace catga::testing;
using Action = SessionTable::Verdict::Action;

namespace {
std::string result_of_int(int v) {
  std::string out;
  catga::detail::encode_result(out, catga::Result<int>(v));
  return out;
}
catga::Result<int> decode(const std::string& bytes) { return catga::detail::decode_result<int>(bytes); }
}  // namespace

TEST(SessionTable, OpensDistinctSessions) {
  SessionTable t;
  auto a = t.open(10, 0, 1000);
  auto b = t.open(10, 1, 1000);
  auto c = t.open(11, 0, 1000);
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(t.sessions(), 3u);
}

TEST(SessionTable, AppliesOnceAndAnswersRetriesWithTheRecordedResult) {
  SessionTable t;
  auto s = t.open(1, 0, 0);
  EXPECT_EQ(t.check(s, 1, 1, "", 10).action, Action::apply);
  t.record(s, 1, "", result_of_int(41), 10);
  auto retry = t.check(s, 1, 1, "", 20);
  ASSERT_EQ(retry.action, Action::answer);
  EXPECT_THAT(decode(retry.answer), IsOkAndHolds(41));
  // Out-of-order sequences (a retry after a later command) are fine.
  EXPECT_EQ(t.check(s, 3, 1, "", 30).action, Action::apply);
  t.record(s, 3, "", result_of_int(43), 30);
  EXPECT_EQ(t.check(s, 2, 1, "", 31).action, Action::apply);
}

TEST(SessionTable, TheFloorForgetsAnsweredSequences) {
  SessionTable t;
  auto s = t.open(1, 0, 0);
  for (std::uint64_t q = 1; q <= 3; ++q) {
    ASSERT_EQ(t.check(s, q, 1, "", 1).action, Action::apply);
    t.record(s, q, "", result_of_int(static_cast<int>(q)), 1);
  }
  // The client now awaits nothing below 3: 1 and 2 are forgotten, and a
  // stale duplicate of them is refused rather than applied again.
  EXPECT_EQ(t.check(s, 4, 3, "", 2).action, Action::apply);
  auto stale = t.check(s, 1, 3, "", 2);
  ASSERT_EQ(stale.action, Action::answer);
  EXPECT_THAT(decode(stale.answer), HasCode(Code::failed_precondition));
  auto kept = t.check(s, 3, 3, "", 2);
  ASSERT_EQ(kept.action, Action::answer);
  EXPECT_THAT(decode(kept.answer), IsOkAndHolds(3));
}

TEST(SessionTable, UnknownOrExpiredSessionsHaveUnknownOutcomes) {
  SessionTable t;
  auto unknown = t.check(12345, 1, 1, "", 0);
  ASSERT_EQ(unknown.action, Action::answer);
  EXPECT_THAT(decode(unknown.answer), HasCode(Code::deadline_exceeded));

  auto s = t.open(1, 0, 0);
  const std::int64_t later = SessionTable::kSessionTtl.count() + 5000;
  (void)t.check(0, 0, 0, "", later);  // any command moves the clock and sweeps
  EXPECT_EQ(t.sessions(), 0u);
  auto expired = t.check(s, 1, 1, "", later);
  ASSERT_EQ(expired.action, Action::answer);
  EXPECT_THAT(decode(expired.answer), HasCode(Code::deadline_exceeded));
}

TEST(SessionTable, TimeNeverGoesBackwards) {
  SessionTable t;
  auto s = t.open(1, 0, 1'000'000);
  // A new leader with a slow clock must not make the session look fresh forever.
  (void)t.check(s, 1, 1, "", 10);
  const std::int64_t expiry = 1'000'000 + SessionTable::kSessionTtl.count() + 2000;
  (void)t.check(0, 0, 0, "", expiry);
  EXPECT_EQ(t.sessions(), 0u);
}

TEST(SessionTable, IdempotencyKeysAnswerWithTheFirstResult) {
  SessionTable t;
  EXPECT_EQ(t.check(0, 0, 0, "order-1", 0).action, Action::apply);
  t.record(0, 0, "order-1", result_of_int(7), 0);
  auto again = t.check(0, 0, 0, "order-1", 1);
  ASSERT_EQ(again.action, Action::answer);
  EXPECT_THAT(decode(again.answer), IsOkAndHolds(7));
  EXPECT_EQ(t.check(0, 0, 0, "order-2", 1).action, Action::apply);
  (void)t.check(0, 0, 0, "", SessionTable::kKeyTtl.count() + 5000);
  EXPECT_EQ(t.keys(), 0u);
}

TEST(SessionTable, SessionsAreBounded) {
  SessionTable t;
  auto first = t.open(1, 0, 0);
  for (std::uint64_t i = 2; i <= SessionTable::kMaxSessions + 1; ++i) (void)t.open(i, 0, static_cast<std::int64_t>(i));
  EXPECT_EQ(t.sessions(), SessionTable::kMaxSessions);
  // The least recently active one went first.
  EXPECT_THAT(decode(t.check(first, 1, 1, "", 1'000'000).answer), HasCode(Code::deadline_exceeded));
}

TEST(SessionTable, EncodesAndDecodesExactly) {
  SessionTable t;
  auto s = t.open(5, 2, 100);
  (void)t.check(s, 1, 1, "k", 100);
  t.record(s, 1, "k", result_of_int(9), 100);
  SessionTable u;
  ASSERT_THAT(u.decode(t.encode()), IsOk());
  EXPECT_EQ(u, t);
  SessionTable v;
  EXPECT_THAT(v.decode("garbage"), HasCode(Code::data_loss));
  auto bytes = t.encode();
  EXPECT_THAT(v.decode(std::string_view(bytes).substr(0, bytes.size() - 2)), HasCode(Code::data_loss));
  EXPECT_EQ(v, SessionTable());
}
