#include "catga/message.hpp"

#include <gtest/gtest.h>

#include "support/bank.hpp"

static_assert(catga::CommandMessage<bank::Open>);
static_assert(!catga::QueryMessage<bank::Open>);
static_assert(catga::QueryMessage<bank::GetAccount>);
static_assert(catga::EventMessage<bank::Deposited>);
static_assert(std::is_same_v<catga::result_of<bank::Deposit>, std::int64_t>);
static_assert(std::is_same_v<catga::result_of<bank::Close>, void>);
struct NotAMessage {
  int x;
};
static_assert(!catga::Message<NotAMessage>);
static_assert(std::is_aggregate_v<bank::Open>);

TEST(Message, DesignatedInitializersWork) {
  bank::Open open{.owner = "ada", .initial = 3};
  EXPECT_EQ(open.owner, "ada");
  EXPECT_EQ(catga::wire_name_of<bank::Open>, "bank.open.v1");
  EXPECT_EQ(bank::Open::catga_message::kind, catga::MessageKind::command);
}
