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

constexpr std::int64_t kMinute = 60'000;

// Leader time passing as it does in a live log: an entry (here an untagged
// check) at least every minute, from `from` to `to` (both ms).
void pass_time(SessionTable& t, std::int64_t from, std::int64_t to) {
  for (std::int64_t now = from; now < to; now += kMinute) (void)t.check(0, 0, 0, "", now);
  (void)t.check(0, 0, 0, "", to);
}
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

TEST(SessionTable, UnknownOrExpiredSessionsAreFlaggedAndNotApplied) {
  SessionTable t;
  EXPECT_EQ(t.check(12345, 1, 1, "", 1).action, Action::session_unknown);

  auto s = t.open(1, 0, 1);
  pass_time(t, 1, 1 + SessionTable::kSessionTtl.count() + kMinute);  // entries of others move the clock
  EXPECT_EQ(t.sessions(), 0u);
  auto expired = t.check(s, 1, 1, "", 2 + SessionTable::kSessionTtl.count() + kMinute);
  EXPECT_EQ(expired.action, Action::session_unknown);
  EXPECT_TRUE(expired.answer.empty());
  EXPECT_EQ(t.keep_alive(s, 1, 3 + SessionTable::kSessionTtl.count() + kMinute).action, Action::session_unknown);
}

TEST(SessionTable, TimeNeverGoesBackwards) {
  SessionTable t;
  auto s = t.open(1, 0, 1'000'000);
  // A new leader with a slow clock must not make the session look fresh forever.
  (void)t.check(s, 1, 1, "", 10);
  pass_time(t, 1'000'000, 1'000'000 + SessionTable::kSessionTtl.count() + 2 * kMinute);
  EXPECT_EQ(t.sessions(), 0u);
}

TEST(SessionTable, IdleSessionKeptAliveSurvivesPastTheTtl) {
  SessionTable t;
  auto s = t.open(1, 0, 1);
  ASSERT_EQ(t.check(s, 1, 1, "", 1).action, Action::apply);
  t.record(s, 1, "", result_of_int(5), 1);
  // Three hours of leader time with nothing but the client's keep-alives.
  for (std::int64_t now = 1; now < 3 * 60 * kMinute; now += SessionTable::kKeepAliveEvery.count()) {
    ASSERT_EQ(t.keep_alive(s, 1, now).action, Action::apply);
  }
  EXPECT_EQ(t.sessions(), 1u);
  auto retry = t.check(s, 1, 1, "", 3 * 60 * kMinute);
  ASSERT_EQ(retry.action, Action::answer);
  EXPECT_THAT(decode(retry.answer), IsOkAndHolds(5));
}

TEST(SessionTable, IdempotencyKeysAnswerWithTheFirstResult) {
  SessionTable t;
  EXPECT_EQ(t.check(0, 0, 0, "order-1", 0).action, Action::apply);
  t.record(0, 0, "order-1", result_of_int(7), 0);
  auto again = t.check(0, 0, 0, "order-1", 1);
  ASSERT_EQ(again.action, Action::answer);
  EXPECT_THAT(decode(again.answer), IsOkAndHolds(7));
  EXPECT_EQ(t.check(0, 0, 0, "order-2", 1).action, Action::apply);
  // A second record of a key keeps the first result.
  t.record(0, 0, "order-1", result_of_int(8), 1);
  EXPECT_THAT(decode(t.check(0, 0, 0, "order-1", 1).answer), IsOkAndHolds(7));
  pass_time(t, 1, SessionTable::kKeyTtl.count() + 2 * kMinute);
  EXPECT_EQ(t.keys(), 0u);
}

TEST(SessionTable, SessionsAreBounded) {
  SessionTable t;
  auto first = t.open(1, 0, 0);
  for (std::uint64_t i = 2; i <= SessionTable::kMaxSessions + 1; ++i) (void)t.open(i, 0, static_cast<std::int64_t>(i));
  EXPECT_EQ(t.sessions(), SessionTable::kMaxSessions);
  // The least recently active one went first.
  EXPECT_EQ(t.check(first, 1, 1, "", 1'000'000).action, Action::session_unknown);
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

// Eviction used to scan all keys (min_element) for every keyed command past
// the bound. Now each command past the bound removes exactly one key — the
// oldest — from the front of the recording queue.
TEST(SessionTable, EvictionAtOneMillionKeysIsNotAScan) {
  SessionTable t;
  const std::size_t extra = 1000;
  for (std::size_t i = 0; i < SessionTable::kMaxKeys + extra; ++i) {
    // Several keys share a millisecond; ties leave in log order.
    const std::int64_t now = 1 + static_cast<std::int64_t>(i / 16);
    const std::string key = "k" + std::to_string(i);
    ASSERT_EQ(t.check(0, 0, 0, key, now).action, Action::apply);
    const std::uint64_t removed_before = t.removed();
    t.record(0, 0, key, result_of_int(static_cast<int>(i % 1000)), now);
    ASSERT_EQ(t.removed() - removed_before, i < SessionTable::kMaxKeys ? 0u : 1u) << i;
  }
  EXPECT_EQ(t.keys(), SessionTable::kMaxKeys);
  // Each of them left before its 24 h: counted, with the age of the last
  // (what the node's warning reports as the window the table offers).
  EXPECT_EQ(t.keys_evicted_early(), extra);
  const std::int64_t last_recorded = 1 + static_cast<std::int64_t>((SessionTable::kMaxKeys + extra - 1) / 16);
  EXPECT_EQ(t.last_early_key_age_ms(), last_recorded - (1 + static_cast<std::int64_t>((extra - 1) / 16)));
  const std::int64_t now = 1 + static_cast<std::int64_t>((SessionTable::kMaxKeys + extra) / 16);
  for (std::size_t i : {std::size_t{0}, std::size_t{1}, extra - 1}) {
    EXPECT_EQ(t.check(0, 0, 0, "k" + std::to_string(i), now).action, Action::apply) << "evicted: k" << i;
  }
  for (std::size_t i : {extra, extra + 1, SessionTable::kMaxKeys + extra - 1}) {
    EXPECT_EQ(t.check(0, 0, 0, "k" + std::to_string(i), now).action, Action::answer) << "kept: k" << i;
  }
  // Snapshots keep the order: a restored table evicts the same key next.
  SessionTable copy;
  ASSERT_THAT(copy.decode(t.encode()), IsOk());
  for (SessionTable* table : {&t, &copy}) {
    (void)table->check(0, 0, 0, "new", now);
    table->record(0, 0, "new", result_of_int(1), now);
    EXPECT_EQ(table->check(0, 0, 0, "k" + std::to_string(extra), now).action, Action::apply);
    EXPECT_EQ(table->check(0, 0, 0, "k" + std::to_string(extra + 1), now).action, Action::answer);
  }
  EXPECT_EQ(copy, t);
}

// A key that expired after its 24 h is not an early eviction.
TEST(SessionTable, AnExpiredKeyIsNotCountedAsEvictedEarly) {
  SessionTable t;
  ASSERT_EQ(t.check(0, 0, 0, "old", 1).action, Action::apply);
  t.record(0, 0, "old", result_of_int(1), 1);
  // Past the TTL in steps the table's clock accepts (at most kMaxClockStep each).
  std::int64_t now = 1;
  const std::int64_t step = SessionTable::kMaxClockStep.count();
  while (now <= 1 + SessionTable::kKeyTtl.count()) {
    now += step;
    (void)t.check(0, 0, 0, "", now);
  }
  ASSERT_EQ(t.check(0, 0, 0, "new", now + 1).action, Action::apply);
  t.record(0, 0, "new", result_of_int(2), now + 1);
  EXPECT_EQ(t.check(0, 0, 0, "old", now + 1).action, Action::apply) << "the old key did not expire";
  EXPECT_EQ(t.keys_evicted_early(), 0u);
}

TEST(SessionTable, ExpiryRemovesOnlyWhatExpired) {
  SessionTable t;
  std::vector<std::uint64_t> ids;
  for (std::uint64_t i = 1; i <= 100; ++i) ids.push_back(t.open(i, 0, static_cast<std::int64_t>(i) * kMinute));
  // The last one stays active; the others idle.
  pass_time(t, 100 * kMinute, 100 * kMinute + 30 * kMinute);
  ASSERT_EQ(t.check(ids[99], 1, 1, "", 130 * kMinute).action, Action::apply);
  EXPECT_EQ(t.removed(), 69u);  // opened at minutes 1..69: idle more than an hour at minute 130
  EXPECT_EQ(t.sessions(), 31u);
  pass_time(t, 130 * kMinute, 170 * kMinute);
  EXPECT_EQ(t.sessions(), 1u);  // only the active one
  EXPECT_EQ(t.check(ids[99], 2, 1, "", 170 * kMinute).action, Action::apply);
}

// A leader whose wall clock jumps a day ahead used to expire every session
// and key at once.
TEST(SessionTable, ClockJumpADayForwardExpiresNothingEarly) {
  SessionTable t;
  const std::int64_t t0 = 1'800'000'000'000;  // unix ms
  const std::int64_t day = 24 * 60 * kMinute;
  auto idle = t.open(1, 0, t0);
  ASSERT_EQ(t.check(0, 0, 0, "key", t0).action, Action::apply);
  t.record(0, 0, "key", result_of_int(1), t0);
  pass_time(t, t0, t0 + 30 * kMinute);
  const std::int64_t before = t.now_ms();
  // The leader's clock jumps a day ahead and stays there.
  (void)t.check(0, 0, 0, "", t0 + 30 * kMinute + day);
  EXPECT_EQ(t.now_ms() - before, SessionTable::kMaxClockStep.count());
  EXPECT_EQ(t.removed(), 0u);
  pass_time(t, t0 + 30 * kMinute + day, t0 + 55 * kMinute + day);
  // 55 minutes of real time passed: the idle session is alive, so is the key.
  EXPECT_EQ(t.removed(), 0u);
  EXPECT_EQ(t.check(idle, 1, 1, "", t0 + 55 * kMinute + day).action, Action::apply);
  EXPECT_EQ(t.check(0, 0, 0, "key", t0 + 55 * kMinute + day).action, Action::answer);
  // A clock flapping between the two times does not make the table's time run.
  const std::int64_t flapping_from = t.now_ms();
  for (int i = 0; i < 100; ++i) {
    (void)t.check(0, 0, 0, "", t0 + 56 * kMinute + (i % 2 == 0 ? 0 : day));
  }
  EXPECT_LE(t.now_ms() - flapping_from, kMinute);
  EXPECT_EQ(t.removed(), 0u);
}

TEST(SessionTable, ClockJumpAnHourBackExpiresNothingAndKeepsTheOrder) {
  SessionTable t;
  const std::int64_t t0 = 1'800'000'000'000;
  auto s = t.open(1, 0, t0);
  ASSERT_EQ(t.check(0, 0, 0, "before", t0 + kMinute).action, Action::apply);
  t.record(0, 0, "before", result_of_int(1), t0 + kMinute);
  const std::int64_t table_time = t.now_ms();
  // The clock goes an hour back; entries keep coming for 50 minutes.
  pass_time(t, t0 - 60 * kMinute, t0 - 10 * kMinute);
  EXPECT_EQ(t.now_ms(), table_time);  // never backwards
  ASSERT_EQ(t.check(0, 0, 0, "after", t0 - 10 * kMinute).action, Action::apply);
  t.record(0, 0, "after", result_of_int(2), t0 - 10 * kMinute);
  EXPECT_EQ(t.removed(), 0u);
  EXPECT_EQ(t.check(s, 1, 1, "", t0 - 10 * kMinute).action, Action::apply);
  // Once the clock is back where it was, time runs again: 58 minutes later
  // the session is alive, as are both keys.
  pass_time(t, t0 + kMinute, t0 + 59 * kMinute);
  EXPECT_EQ(t.now_ms() - table_time, 58 * kMinute);
  EXPECT_EQ(t.removed(), 0u);
  EXPECT_EQ(t.check(s, 2, 1, "", t0 + 59 * kMinute).action, Action::apply);
  EXPECT_EQ(t.check(0, 0, 0, "before", t0 + 59 * kMinute).action, Action::answer);
  EXPECT_EQ(t.check(0, 0, 0, "after", t0 + 59 * kMinute).action, Action::answer);
}

// A session with more than kMaxResultsPerSession unanswered results used to
// drop the oldest answers silently, and a retry of one applied again.
TEST(SessionTable, OverflowFloorAnswersOutcomeUnknown) {
  SessionTable t;
  auto s = t.open(1, 0, 1);
  const std::uint64_t n = SessionTable::kMaxResultsPerSession + 10;
  for (std::uint64_t q = 1; q <= n; ++q) {
    ASSERT_EQ(t.check(s, q, 1, "", 1).action, Action::apply);  // the client still awaits sequence 1
    t.record(s, q, "", result_of_int(static_cast<int>(q % 1000)), 1);
  }
  SessionTable copy;
  ASSERT_THAT(copy.decode(t.encode()), IsOk());
  for (SessionTable* table : {&t, &copy}) {
    for (std::uint64_t q : {std::uint64_t{1}, std::uint64_t{10}}) {
      auto retry = table->check(s, q, 1, "", 2);
      ASSERT_EQ(retry.action, Action::answer) << q;
      EXPECT_THAT(decode(retry.answer), HasCode(Code::deadline_exceeded)) << q;
    }
    auto kept = table->check(s, 11, 1, "", 2);
    ASSERT_EQ(kept.action, Action::answer);
    EXPECT_THAT(decode(kept.answer), IsOkAndHolds(11));
    EXPECT_EQ(table->check(s, n + 1, 1, "", 2).action, Action::apply);
  }
}

// Session ids were (index << 16) | (position & 0xffff): two opens in one
// entry 65,536 positions apart got the same id.
TEST(SessionTable, TwoSessionsOpenedInOneEntryBeyond65536PositionsDoNotCollide) {
  SessionTable t;
  auto a = t.open(7, 1, 1);
  ASSERT_NE(a, 0u);
  ASSERT_EQ(t.check(a, 1, 1, "", 1).action, Action::apply);
  t.record(a, 1, "", result_of_int(3), 1);
  // Position 65,537 of the same entry (only an older leader packs that many):
  // refused, not a second session under a's id.
  EXPECT_EQ(t.open(7, SessionTable::kMaxOpenPosition + 1, 1), 0u);
  EXPECT_EQ(t.open(7, SessionTable::kMaxOpenPosition, 1), 0u);
  EXPECT_EQ(t.sessions(), 1u);
  auto retry = t.check(a, 1, 1, "", 1);
  ASSERT_EQ(retry.action, Action::answer);
  EXPECT_THAT(decode(retry.answer), IsOkAndHolds(3));
  // The highest position allowed and the next entry's first one differ.
  auto last = t.open(7, SessionTable::kMaxOpenPosition - 1, 1);
  auto next = t.open(8, 0, 1);
  EXPECT_NE(last, 0u);
  EXPECT_NE(last, next);
  EXPECT_NE(last, a);
  EXPECT_EQ(t.sessions(), 3u);
}

// Format 1 (before the ordered queues) is still read, in the order it evicted.
TEST(SessionTable, DecodesFormat1) {
  std::string bytes;
  catga::detail::StringSink sink{&bytes};
  msgpack::packer<catga::detail::StringSink> p(sink);
  const std::string result = result_of_int(4);
  p.pack_array(5);
  p.pack(1u);
  p.pack(std::int64_t{5000});
  p.pack(std::int64_t{6000});
  p.pack_array(2);  // sessions by id: 2 is older than 1
  for (auto [id, last] : {std::pair<std::uint64_t, std::int64_t>{1u << 16, 5000}, {2u << 16, 100}}) {
    p.pack_array(4);
    p.pack(id);
    p.pack(last);
    p.pack(std::uint64_t{1});
    p.pack_array(1);
    p.pack_array(2);
    p.pack(std::uint64_t{1});
    p.pack_bin(static_cast<std::uint32_t>(result.size()));
    p.pack_bin_body(result.data(), static_cast<std::uint32_t>(result.size()));
  }
  p.pack_array(2);  // keys by key: "b" is older than "a"
  for (auto [key, recorded] : {std::pair<std::string, std::int64_t>{"a", 4000}, {"b", 10}}) {
    p.pack_array(3);
    p.pack(key);
    p.pack(recorded);
    p.pack_bin(static_cast<std::uint32_t>(result.size()));
    p.pack_bin_body(result.data(), static_cast<std::uint32_t>(result.size()));
  }
  SessionTable t;
  ASSERT_THAT(t.decode(bytes), IsOk());
  EXPECT_EQ(t.sessions(), 2u);
  EXPECT_EQ(t.keys(), 2u);
  EXPECT_THAT(decode(t.check(1u << 16, 1, 1, "", 5000).answer), IsOkAndHolds(4));
  // Session 2 (least recently active) and key "b" (oldest) expire first.
  pass_time(t, 5000, 100 + SessionTable::kSessionTtl.count() + 1000);
  EXPECT_EQ(t.check(2u << 16, 1, 1, "", 100 + SessionTable::kSessionTtl.count() + 1000).action,
            Action::session_unknown);
  EXPECT_EQ(t.sessions(), 1u);
  SessionTable again;
  ASSERT_THAT(again.decode(t.encode()), IsOk());
  EXPECT_EQ(again, t);
}
