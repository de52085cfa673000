// What the tests of the in-process mediator share (mediator_test.cc,
// in_memory_application_test.cc): the names they use, the test bank as an
// in-memory Application, and a behaviour that records what it saw.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "catga/testing.hpp"
#include "support/bank.hpp"

namespace mediator_test {

// The names both test files use.
using catga::Code;
using catga::Error;
using catga::Result;
using namespace catga::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The bank's handlers, in memory, on `b` (which may hold more handlers and
// behaviours); a failed build fails the test.
inline std::unique_ptr<catga::Application> make_bank(catga::ApplicationBuilder<bank::State>& b) {
  bank::register_handlers(b).in_memory();
  auto app = b.build();
  EXPECT_THAT(app, IsOk());
  return std::move(*app);
}

inline std::unique_ptr<catga::Application> make_bank() {
  catga::ApplicationBuilder<bank::State> b;
  return make_bank(b);
}

// Records "NAME before WIRE-NAME" and "NAME after OUTCOME" in `trace`.
struct Tracing : catga::Behavior {
  Tracing(std::string name, std::vector<std::string>& trace) : name(std::move(name)), trace(trace) {}
  void handle(catga::Request& request, catga::Next& next) override {
    trace.push_back(name + " before " + std::string(request.wire_name()));
    next([this](const Result<void>& outcome) {
      trace.push_back(name + " after " + (outcome ? std::string("ok") : outcome.error().to_string()));
    });
  }
  std::string name;
  std::vector<std::string>& trace;
};

}  // namespace mediator_test
