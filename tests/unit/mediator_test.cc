// The in-process mediator, through an in-memory Application: handlers,
// registration errors, events raised by commands, exceptions, the command
// context, and behaviours. Calling styles, state snapshots and messages by
// wire name: in_memory_application_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <ios>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "catga/testing.hpp"
#include "core/application_access.hpp"
#include "core/context_access.hpp"
#include "support/bank.hpp"
#include "unit/mediator_test_support.hpp"

using namespace mediator_test;  // with the names both files use

namespace {

struct Unregistered {
  using catga_message = catga::Command<int, "test.unregistered.v1">;
  int x = 0;
  MSGPACK_DEFINE_MAP(x);
};
struct UnregisteredQuery {
  using catga_message = catga::Query<int, "test.unregistered-query.v1">;
  int x = 0;
  MSGPACK_DEFINE_MAP(x);
};

}  // namespace

TEST(Mediator, SendsCommandsAndQueries) {
  auto app = make_bank();
  auto opened = app->send(bank::Open{.owner = "ada", .initial = 5});
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->id, 1u);
  EXPECT_THAT(app->send(bank::Deposit{.account = opened->id, .amount = 7}), IsOkAndHolds(12));
  auto got = app->send(bank::GetAccount{.account = opened->id});
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->balance, 12);
  EXPECT_THAT(app->send(bank::Close{.account = opened->id}), IsOk());
  EXPECT_THAT(app->send(bank::GetAccount{.account = opened->id}), HasCode(Code::not_found));
}

// A handler object with its own (immutable) configuration.
class CappedDeposit {
 public:
  explicit CappedDeposit(std::int64_t cap) : cap_(cap) {}
  Result<std::int64_t> operator()(bank::State& s, const bank::Deposit& d, catga::CommandContext& ctx) const {
    if (d.amount > cap_) return Error{Code::invalid_argument, "above the cap"};
    return bank::deposit(s, d, ctx);
  }

 private:
  std::int64_t cap_;
};

TEST(Mediator, HandlersMayBeFunctionsLambdasOrObjects) {
  catga::ApplicationBuilder<bank::State> b;
  b.command<bank::Open>(bank::open)                                                  // free function
      .command<bank::Deposit>(CappedDeposit{100})                                    // object
      .command<bank::Close>([](bank::State& s, const bank::Close& c) { return bank::close(s, c); })  // lambda
      .query<bank::GetAccount>(&bank::get)                                           // function pointer
      .in_memory();
  auto app = b.build();
  ASSERT_THAT(app, IsOk());
  auto acc = (*app)->send(bank::Open{.owner = "o"});
  ASSERT_THAT(acc, IsOk());
  EXPECT_THAT((*app)->send(bank::Deposit{.account = acc->id, .amount = 101}), HasCode(Code::invalid_argument));
  EXPECT_THAT((*app)->send(bank::Deposit{.account = acc->id, .amount = 100}), IsOkAndHolds(100));
  EXPECT_THAT((*app)->send(bank::Close{.account = acc->id}), IsOk());
  EXPECT_THAT((*app)->send(bank::GetAccount{.account = acc->id}), HasCode(Code::not_found));
}

TEST(Mediator, HandlerErrorsTravelInTheResult) {
  auto app = make_bank();
  EXPECT_THAT(app->send(bank::Open{}), HasError(Code::invalid_argument, HasSubstr("owner")));
  EXPECT_THAT(app->send(bank::Deposit{.account = 99, .amount = 1}), HasError(Code::not_found, HasSubstr("99")));
}

TEST(Mediator, MissingHandlerNamesTheWireName) {
  auto app = make_bank();
  EXPECT_THAT(app->send(Unregistered{}), HasError(Code::unimplemented, HasSubstr("test.unregistered.v1")));
  EXPECT_THAT(app->send(UnregisteredQuery{}), HasError(Code::unimplemented, HasSubstr("test.unregistered-query.v1")));
  // Publishing an event nobody handles is fine: events may have no handlers.
  EXPECT_THAT(app->publish(bank::Deposited{}), IsOk());
}

TEST(Mediator, DuplicateRegistrationIsAStartUpError) {
  catga::ApplicationBuilder<bank::State> b;
  bank::register_handlers(b).command<bank::Open>(bank::open).in_memory();
  EXPECT_THAT(b.build(), HasError(Code::already_exists, HasSubstr("bank.open.v1")));
}

// This binary links catga::core alone (tests/unit/CMakeLists.txt): the
// in-memory Application works, and every placement that needs a Raft log
// says which library is missing instead of failing to link.
TEST(Mediator, DurablePlacementsWithoutTheClusterLibraryAreAClearError) {
  catga::ApplicationBuilder<bank::State> by_default;
  bank::register_handlers(by_default);
  EXPECT_THAT(by_default.build(), HasError(Code::failed_precondition, HasSubstr("catga::cluster")));
  catga::ApplicationBuilder<bank::State> in_dir;
  bank::register_handlers(in_dir).data_dir(::testing::TempDir() + "/catga-core-only");
  EXPECT_THAT(in_dir.build(), HasError(Code::failed_precondition, HasSubstr("in_memory()")));
}

struct Impostor {  // same wire name as bank::Open, different type
  using catga_message = catga::Command<int, "bank.open.v1">;
  int x = 0;
  MSGPACK_DEFINE_MAP(x);
};

TEST(Mediator, ClashingWireNamesAreAStartUpError) {
  catga::ApplicationBuilder<bank::State> b;
  bank::register_handlers(b).command<Impostor>([](bank::State&, const Impostor&) { return 1; }).in_memory();
  EXPECT_THAT(b.build(), HasError(Code::already_exists, HasSubstr("two different message types")));
}

TEST(Mediator, EventsRaisedByACommandAreDeliveredAfterItApplies) {
  catga::ApplicationBuilder<bank::State> b;
  std::vector<std::string> seen;
  catga::Application* raw = nullptr;
  b.on<bank::Deposited>([&](const bank::Deposited& e, const catga::EventContext& ctx) {
    // The command has applied: its effect is visible to a query.
    auto acc = raw->send(bank::GetAccount{.account = e.account});
    seen.push_back("h1 " + std::to_string(e.balance) + " visible=" + std::to_string(acc ? acc->balance : -1) +
                   " index=" + std::to_string(ctx.index));
  });
  b.on<bank::Deposited>([&](const bank::Deposited& e) { seen.push_back("h2 " + std::to_string(e.amount)); });
  auto app = make_bank(b);
  raw = app.get();
  auto acc = app->send(bank::Open{.owner = "x"});
  ASSERT_THAT(acc, IsOk());
  ASSERT_THAT(app->send(bank::Deposit{.account = acc->id, .amount = 3}), IsOk());
  EXPECT_THAT(seen, ElementsAre("h1 3 visible=3 index=2", "h2 3"));
  // A failed command raises nothing.
  seen.clear();
  ASSERT_THAT(app->send(bank::Deposit{.account = acc->id, .amount = -1}), HasCode(Code::invalid_argument));
  EXPECT_TRUE(seen.empty());
}

TEST(Mediator, FailingEventHandlersAreIsolatedAndCounted) {
  catga::ApplicationBuilder<bank::State> b;
  int after = 0;
  b.on<bank::Deposited>([](const bank::Deposited&) -> Result<void> { return Error{Code::internal, "broken"}; });
  b.on<bank::Deposited>([](const bank::Deposited&) { throw std::runtime_error("worse"); });
  b.on<bank::Deposited>([&](const bank::Deposited&) { ++after; });
  auto app = make_bank(b);
  auto acc = app->send(bank::Open{.owner = "x"});
  EXPECT_THAT(app->send(bank::Deposit{.account = acc->id, .amount = 1}), IsOkAndHolds(1));
  EXPECT_EQ(after, 1);
  EXPECT_EQ(catga::internal::mediator_of(*app).counters().event_handler_failures.load(), 2u);
}

TEST(Mediator, HandlerExceptionsBecomeInternalErrors) {
  catga::ApplicationBuilder<bank::State> b;
  b.command<Unregistered>([](bank::State&, const Unregistered&) -> int { throw std::runtime_error("kaput"); });
  auto app = make_bank(b);
  EXPECT_THAT(app->send(Unregistered{}), HasError(Code::internal, HasSubstr("kaput")));
}

TEST(Mediator, NodeFailuresAreToldApartFromDeterministicExceptions) {
  auto node_failure = [](auto thrown) { return catga::detail::is_node_failure(std::make_exception_ptr(thrown)); };
  EXPECT_TRUE(node_failure(std::bad_alloc()));
  EXPECT_TRUE(node_failure(std::bad_array_new_length()));
  EXPECT_TRUE(node_failure(std::system_error(std::make_error_code(std::errc::io_error))));
  EXPECT_TRUE(node_failure(std::ios_base::failure("stream")));  // a std::system_error
  EXPECT_TRUE(node_failure(42));                                // origin unknown
  EXPECT_FALSE(node_failure(std::invalid_argument("x")));
  EXPECT_FALSE(node_failure(std::out_of_range("x")));
  EXPECT_FALSE(node_failure(std::logic_error("x")));
  EXPECT_FALSE(node_failure(std::runtime_error("x")));
}

TEST(Mediator, InMemoryEveryHandlerExceptionIsAnInternalResult) {
  // Nothing is replicated in memory: even a node failure is just a result.
  catga::ApplicationBuilder<bank::State> b;
  b.command<Unregistered>([](bank::State&, const Unregistered& c) -> int {
    if (c.x == 1) throw std::bad_alloc();
    throw 42;
  });
  auto app = make_bank(b);
  EXPECT_THAT(app->send(Unregistered{.x = 1}), HasError(Code::internal, HasSubstr("bad_alloc")));
  EXPECT_THAT(app->send(Unregistered{.x = 2}), HasError(Code::internal, HasSubstr("unknown exception")));
}

TEST(Mediator, ReplicatedApplyLetsNodeFailuresThrough) {
  // The path a replicated command takes (ReplicatedStateMachine): a node
  // failure propagates, a deterministic exception is the encoded result.
  catga::ApplicationBuilder<bank::State> b;
  b.command<Unregistered>([](bank::State&, const Unregistered& c) -> int {
    if (c.x == 1) throw std::bad_alloc();
    throw std::out_of_range("deterministic");
  });
  auto app = make_bank(b);
  auto* slot = catga::internal::mediator_of(*app).slot<Unregistered>();
  ASSERT_NE(slot, nullptr);
  auto& state = catga::internal::mediator_of(*app).state();
  catga::CommandContext ctx = catga::internal::CommandContextAccess::make(1, 1, {}, &state.id_counter());
  std::string out;
  EXPECT_THROW(slot->apply_encoded_locked(state, catga::encode(Unregistered{.x = 1}), ctx, out), std::bad_alloc);
  EXPECT_FALSE(slot->apply_encoded_locked(state, catga::encode(Unregistered{.x = 2}), ctx, out));
  EXPECT_THAT(catga::detail::decode_result<int>(out), HasError(Code::internal, HasSubstr("deterministic")));
}

// A program cannot make a CommandContext (nor reach the events it holds):
// the engines that apply commands make it (internal::CommandContextAccess).
static_assert(!std::is_constructible_v<catga::CommandContext, std::uint64_t, std::uint64_t, catga::Timestamp,
                                       std::uint64_t*>);
TEST(Mediator, TheEngineMakesTheCommandContext) {
  std::uint64_t ids = 41;
  const catga::Timestamp at{std::chrono::seconds(1'700'000'000)};
  auto ctx = catga::internal::CommandContextAccess::make(7, 3, at, &ids);
  EXPECT_EQ(ctx.index(), 7u);
  EXPECT_EQ(ctx.term(), 3u);
  EXPECT_EQ(ctx.time(), at);
  EXPECT_EQ(ctx.new_id(), 42u);
  EXPECT_EQ(ids, 42u);
}

// ---------------------------------------------------------------- behaviours

namespace {
struct RejectNegativeDeposits : catga::Behavior {
  void handle(catga::Request& request, catga::Next& next) override {
    if (const auto* d = request.as<bank::Deposit>(); d && d->amount < 0) {
      next.reject(Error{Code::invalid_argument, "validation: negative amount"});
      return;
    }
    next();
  }
};

struct Forgetful : catga::Behavior {
  void handle(catga::Request&, catga::Next&) override {}
};
}  // namespace

TEST(Behaviors, RunInOrderAndSeeTheOutcome) {
  std::vector<std::string> trace;
  catga::ApplicationBuilder<bank::State> b;
  b.use(std::make_unique<Tracing>("outer", trace)).use(std::make_unique<Tracing>("inner", trace));
  auto app = make_bank(b);
  ASSERT_THAT(app->send(bank::Open{.owner = "ada"}), IsOk());
  EXPECT_THAT(trace, ElementsAre("outer before bank.open.v1", "inner before bank.open.v1", "inner after ok", "outer after ok"));
  trace.clear();
  ASSERT_THAT(app->send(bank::GetAccount{.account = 42}), HasCode(Code::not_found));
  EXPECT_THAT(trace, ElementsAre("outer before bank.get.v1", "inner before bank.get.v1", "inner after not_found: account 42",
                                 "outer after not_found: account 42"));
}

TEST(Behaviors, CanShortCircuit) {
  std::vector<std::string> trace;
  catga::ApplicationBuilder<bank::State> b;
  b.use(std::make_unique<Tracing>("outer", trace)).use(std::make_unique<RejectNegativeDeposits>())
      .use(std::make_unique<Tracing>("never", trace));
  auto app = make_bank(b);
  auto acc = app->send(bank::Open{.owner = "ada"});
  ASSERT_THAT(acc, IsOk());
  trace.clear();
  EXPECT_THAT(app->send(bank::Deposit{.account = acc->id, .amount = -5}), HasError(Code::invalid_argument, HasSubstr("validation")));
  EXPECT_THAT(trace, ElementsAre("outer before bank.deposit.v1", "outer after invalid_argument: validation: negative amount"));
  // The handler never ran: the journal holds only the open.
  EXPECT_EQ(app->send(bank::GetAccount{.account = acc->id})->balance, 0);
}

TEST(Behaviors, ABehaviorThatDecidesNothingIsAnError) {
  catga::ApplicationBuilder<bank::State> b;
  b.use(std::make_unique<Forgetful>());
  auto app = make_bank(b);
  EXPECT_THAT(app->send(bank::Open{.owner = "x"}), HasError(Code::internal, HasSubstr("neither continued nor rejected")));
}
