// An in-memory Application: the three ways to call it (callback, future,
// coroutine) and receipts, its state's snapshot and restore, and messages
// sent by wire name through the same pipeline. The mediator itself:
// mediator_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catga/asio.hpp"
#include "catga/testing.hpp"
#include "core/application_access.hpp"
#include "support/bank.hpp"
#include "unit/mediator_test_support.hpp"

using namespace mediator_test;  // with the names both files use

// ---------------------------------------------------------------- three ways to call

TEST(CallStyles, CallbackFutureAndCoroutine) {
  auto app = make_bank();
  Result<bank::Account> via_callback = Error{};
  app->send(bank::Open{.owner = "cb"}, catga::CommandOptions{}, [&](Result<bank::Account> r) { via_callback = std::move(r); });
  ASSERT_THAT(via_callback, IsOk());

  auto future = catga::async_send(*app, bank::Deposit{.account = via_callback->id, .amount = 4}, asio::use_future);
  EXPECT_THAT(future.get(), IsOkAndHolds(4));

  asio::io_context io;
  Result<bank::Account> via_coroutine = Error{};
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        via_coroutine = co_await catga::async_send(*app, bank::GetAccount{.account = via_callback->id}, asio::use_awaitable);
      },
      asio::detached);
  io.run();
  ASSERT_THAT(via_coroutine, IsOk());
  EXPECT_EQ(via_coroutine->balance, 4);
}

// async_publish, with a future and in a coroutine: the event reaches its
// handlers and the completion says ok.
TEST(CallStyles, AsyncPublishWithAFutureAndInACoroutine) {
  catga::ApplicationBuilder<bank::State> b;
  std::vector<std::int64_t> seen;
  b.on<bank::Deposited>([&seen](const bank::Deposited& e) { seen.push_back(e.amount); });
  auto app = make_bank(b);

  auto future = catga::async_publish(*app, bank::Deposited{.account = 1, .amount = 7, .balance = 7}, asio::use_future);
  EXPECT_THAT(future.get(), IsOk());
  EXPECT_THAT(seen, ::testing::ElementsAre(7));

  asio::io_context io;
  Result<void> via_coroutine = Error{};
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        via_coroutine = co_await catga::async_publish(*app, bank::Deposited{.account = 1, .amount = 5, .balance = 12},
                                                      asio::use_awaitable);
      },
      asio::detached);
  io.run();
  EXPECT_THAT(via_coroutine, IsOk());
  EXPECT_THAT(seen, ::testing::ElementsAre(7, 5));
}

TEST(CallStyles, ReceiptsCarryTheIndex) {
  auto app = make_bank();
  auto first = app->send_receipt(bank::Open{.owner = "a"});
  auto second = app->send_receipt(bank::Open{.owner = "b"});
  ASSERT_THAT(first.result, IsOk());
  EXPECT_LT(first.index, second.index);
}

// ---------------------------------------------------------------- state

TEST(State, SnapshotRoundTripsUserAndLibraryState) {
  auto app = make_bank();
  ASSERT_THAT(app->send(bank::Open{.owner = "a", .initial = 1}), IsOk());
  ASSERT_THAT(app->send(bank::Open{.owner = "b", .initial = 2}), IsOk());
  std::string snap = catga::internal::mediator_of(*app).state().snapshot();

  auto other = make_bank();
  ASSERT_THAT(catga::internal::mediator_of(*other).state().restore(snap), IsOk());
  EXPECT_EQ(other->send(bank::GetAccount{.account = 2})->owner, "b");
  // The id counter came along: the next id continues the sequence.
  EXPECT_EQ(other->send(bank::Open{.owner = "c"})->id, 3u);
}

// A state past the limits put on messages (2^20 elements in one container,
// 64 MiB in all) restores: a node whose state grew that far could otherwise
// never restart from its snapshot, nor a follower receive it.
struct LargeState {
  std::vector<std::uint8_t> many;  // more elements than a message may hold
  std::string big;                 // more bytes than a message may hold
  MSGPACK_DEFINE_MAP(many, big);
};

TEST(State, SnapshotLargerThanTheMessageLimitsRestores) {
  catga::detail::StateCell<LargeState> state, other;
  const catga::DecodeLimits message_limits;
  state.value.many.assign(message_limits.max_array + 1, 7);
  state.value.big.assign(message_limits.max_bytes + 1, 'x');
  const std::string snap = state.snapshot();
  ASSERT_GT(snap.size(), message_limits.max_bytes);
  ASSERT_THAT(other.restore(snap), IsOk());
  EXPECT_EQ(other.value.many.size(), message_limits.max_array + 1);
  EXPECT_EQ(other.value.big.size(), message_limits.max_bytes + 1);
}

TEST(State, CorruptSnapshotIsRefusedAndLeavesStateAlone) {
  auto app = make_bank();
  ASSERT_THAT(app->send(bank::Open{.owner = "a"}), IsOk());
  EXPECT_THAT(catga::internal::mediator_of(*app).state().restore("not a snapshot"), HasCode(Code::data_loss));
  std::string snap = catga::internal::mediator_of(*app).state().snapshot();
  EXPECT_THAT(catga::internal::mediator_of(*app).state().restore(std::string_view(snap).substr(0, snap.size() - 3)), HasCode(Code::data_loss));
  EXPECT_THAT(app->send(bank::GetAccount{.account = 1}), IsOk());
}

TEST(State, ConcurrentCommandsAndQueriesAreSafe) {
  auto app = make_bank();
  auto acc = app->send(bank::Open{.owner = "shared"});
  ASSERT_THAT(acc, IsOk());
  constexpr int kThreads = 4, kPerThread = 2000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (t % 2 == 0) {
          if (!app->send(bank::Deposit{.account = acc->id, .amount = 1})) ++failures;
        } else {
          auto r = app->send(bank::GetAccount{.account = acc->id});
          if (!r || r->balance < 0) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(app->send(bank::GetAccount{.account = acc->id})->balance, kPerThread * (kThreads / 2));
}

// ---------------------------------------------------------------- by wire name

TEST(Encoded, SendsByWireNameThroughTheSamePipeline) {
  std::vector<std::string> trace;
  catga::ApplicationBuilder<bank::State> b;
  b.use(std::make_unique<Tracing>("t", trace));
  auto app = make_bank(b);
  Result<std::string> encoded = Error{};
  std::uint64_t index = 0;
  app->send_encoded("bank.open.v1", catga::encode(bank::Open{.owner = "enc", .initial = 4}), {},
                    [&](Result<std::string> r, std::uint64_t i) {
                      encoded = std::move(r);
                      index = i;
                    });
  ASSERT_THAT(encoded, IsOk());
  EXPECT_GT(index, 0u);
  auto account = catga::detail::decode_result<bank::Account>(*encoded);
  ASSERT_THAT(account, IsOk());
  EXPECT_EQ(account->owner, "enc");
  EXPECT_THAT(trace, ElementsAre("t before bank.open.v1", "t after ok"));

  Result<std::string> queried = Error{};
  app->query_encoded("bank.get.v1", catga::encode(bank::GetAccount{.account = account->id}), {},
                     [&](Result<std::string> r, std::uint64_t) { queried = std::move(r); });
  ASSERT_THAT(queried, IsOk());
  EXPECT_EQ(catga::detail::decode_result<bank::Account>(*queried)->balance, 4);

  // A handler error is a result, encoded like a value.
  Result<std::string> failed = Error{};
  app->send_encoded("bank.deposit.v1", catga::encode(bank::Deposit{.account = 99, .amount = 1}), {},
                    [&](Result<std::string> r, std::uint64_t) { failed = std::move(r); });
  ASSERT_THAT(failed, IsOk());
  EXPECT_THAT(catga::detail::decode_result<std::int64_t>(*failed), HasCode(Code::not_found));
}

TEST(Encoded, UnknownNamesWrongKindsAndBadPayloadsAreErrors) {
  auto app = make_bank();
  Result<std::string> r = std::string();
  auto keep = [&](Result<std::string> x, std::uint64_t) { r = std::move(x); };
  app->send_encoded("bank.nope.v1", catga::encode(1), {}, keep);
  EXPECT_THAT(r, HasError(Code::unimplemented, HasSubstr("bank.nope.v1")));
  app->send_encoded("bank.get.v1", catga::encode(bank::GetAccount{}), {}, keep);  // a query, not a command
  EXPECT_THAT(r, HasCode(Code::unimplemented));
  app->query_encoded("bank.open.v1", catga::encode(bank::Open{}), {}, keep);
  EXPECT_THAT(r, HasCode(Code::unimplemented));
  app->send_encoded("bank.open.v1", "\xc1", {}, keep);
  EXPECT_THAT(r, HasCode(Code::invalid_argument));
  app->send_encoded("bank.open.v1", catga::encode(42), {}, keep);
  EXPECT_THAT(r, HasError(Code::invalid_argument, HasSubstr("bank.open.v1")));
}
