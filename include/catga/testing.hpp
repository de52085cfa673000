// catga/testing.hpp — gMock matchers for `Result<T>` in users' tests (and ours).
//
//   EXPECT_THAT(app->send(GetOrder{.id = 1}), IsOkAndHolds(Field(&Order::quantity, 2)));
//   EXPECT_THAT(app->send(CancelOrder{.id = 1}), HasCode(catga::Code::failed_precondition));
//   EXPECT_THAT(result, HasError(catga::Code::not_found, HasSubstr("order 9")));
//
// Header-only; link GMock.
#pragma once

#include <gmock/gmock.h>

#include "catga/result.hpp"

namespace catga::testing {

MATCHER(IsOk, "is an ok Result") {
  if (arg.has_value()) return true;
  *result_listener << "which failed with " << arg.error();
  return false;
}

MATCHER_P(IsOkAndHolds, inner, "is an ok Result with a matching value") {
  if (!arg.has_value()) {
    *result_listener << "which failed with " << arg.error();
    return false;
  }
  return ::testing::ExplainMatchResult(inner, *arg, result_listener);
}

MATCHER_P(HasCode, code, std::string("fails with code ") + std::string(::catga::to_string(code))) {
  if (arg.has_value()) {
    *result_listener << "which succeeded";
    return false;
  }
  if (arg.error().code() == code) return true;
  *result_listener << "which failed with " << arg.error();
  return false;
}

MATCHER_P2(HasError, code, message_matcher,
           std::string("fails with code ") + std::string(::catga::to_string(code)) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  if (arg.has_value()) {
    *result_listener << "which succeeded";
    return false;
  }
  if (arg.error().code() != code) {
    *result_listener << "which failed with " << arg.error();
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, arg.error().message(), result_listener);
}

}  // namespace catga::testing
