#include "catga/result.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>

#include "catga/testing.hpp"

using catga::Code;
using catga::Error;
using catga::Result;
using namespace catga::testing;
using ::testing::HasSubstr;

TEST(Result, HoldsValueOrError) {
  Result<int> ok = 7;
  EXPECT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 7);
  EXPECT_EQ(ok.value(), 7);
  Result<int> bad = Error{Code::not_found, "nope"};
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Code::not_found);
  EXPECT_EQ(bad.value_or(3), 3);
  EXPECT_THROW((void)bad.value(), catga::BadResultAccess);
}

TEST(Result, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  Result<std::unique_ptr<int>> moved = std::move(r);
  ASSERT_TRUE(moved);
  EXPECT_EQ(**moved, 5);
}

TEST(Result, CopyAndAssignAcrossStates) {
  Result<std::string> a = std::string("x");
  Result<std::string> b = Error{Code::internal, "boom"};
  a = b;
  EXPECT_THAT(a, HasCode(Code::internal));
  b = Result<std::string>(std::string("y"));
  EXPECT_THAT(b, IsOkAndHolds(std::string("y")));
  EXPECT_EQ(Result<int>(1), Result<int>(1));
  EXPECT_NE(Result<int>(1), Result<int>(Error{Code::internal, ""}));
}

TEST(Result, Monadic) {
  Result<int> two = 2;
  auto four = two.and_then([](int v) -> Result<int> { return v * 2; });
  EXPECT_THAT(four, IsOkAndHolds(4));
  auto text = four.transform([](int v) { return std::to_string(v); });
  EXPECT_THAT(text, IsOkAndHolds(std::string("4")));
  Result<int> bad = Error{Code::unavailable, "down"};
  EXPECT_THAT(bad.transform([](int v) { return v + 1; }), HasCode(Code::unavailable));
  EXPECT_THAT(bad.or_else([](const Error&) -> Result<int> { return 9; }), IsOkAndHolds(9));
}

TEST(Result, VoidResult) {
  Result<void> ok;
  EXPECT_THAT(ok, IsOk());
  Result<void> bad = Error{Code::already_exists, "dup"};
  EXPECT_THAT(bad, HasError(Code::already_exists, HasSubstr("dup")));
  EXPECT_THROW(bad.value(), catga::BadResultAccess);
}

TEST(Code, NamesRoundTripAndClassification) {
  for (int i = 0; i <= 16; ++i) {
    auto code = static_cast<Code>(i);
    Code parsed{};
    ASSERT_TRUE(catga::parse_code(catga::to_string(code), parsed));
    EXPECT_EQ(parsed, code);
  }
  Code parsed{};
  EXPECT_FALSE(catga::parse_code("teapot", parsed));
  EXPECT_TRUE(catga::is_retryable(Code::unavailable));
  EXPECT_FALSE(catga::is_retryable(Code::deadline_exceeded));
  EXPECT_TRUE(catga::is_outcome_unknown(Code::deadline_exceeded));
  EXPECT_FALSE(catga::is_outcome_unknown(Code::unavailable));
}

TEST(Error, Prints) {
  std::ostringstream os;
  os << Error{Code::not_found, "order 7"};
  EXPECT_EQ(os.str(), "not_found: order 7");
  std::ostringstream r;
  r << Result<int>(3) << " " << Result<int>(Error{Code::internal, "x"});
  EXPECT_EQ(r.str(), "ok(3) error(internal: x)");
}
