// catga::http::Server's generic message endpoints run the application's
// behaviours: a behaviour's rejection is the HTTP answer, for commands and
// for published events. Each test builds its own in-memory Application.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "http/http_test_support.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;

// Rejects every bank.open.v1 whose owner is "mallory".
class RejectMallory final : public Behavior {
 public:
  void handle(catga::Request& request, Next& next) override {
    if (const auto* open = request.as<bank::Open>(); open && open->owner == "mallory") {
      return next.reject(Error{Code::permission_denied, "mallory may not open accounts"});
    }
    next();
  }
};

// The generic message endpoints over the bank (with a Deposited handler)
// and one behaviour.
struct GenericEndpointsWith {
  explicit GenericEndpointsWith(std::unique_ptr<Behavior> behaviour) {
    catga::ApplicationBuilder<bank::State> builder;
    bank::register_handlers(builder)
        .on<bank::Deposited>([](const bank::Deposited&) {})
        .use(std::move(behaviour))
        .in_memory();
    auto built = builder.build();
    if (!built) throw std::runtime_error("build: " + built.error().message());
    app = std::move(*built);
    server = std::make_unique<http::Server>(*app);
    server->map_message_endpoints();
    if (auto started = server->start(); !started) throw std::runtime_error("start: " + started.error().message());
  }
  HttpClient client() { return HttpClient(server->port()); }

  std::unique_ptr<Application> app;
  std::unique_ptr<http::Server> server;  // destroyed first: it borrows the application
};

TEST(HttpServerBehaviours, GenericEndpointsRunTheApplicationsBehaviours) {
  GenericEndpointsWith service(std::make_unique<RejectMallory>());
  auto c = service.client();
  auto refused = c.post("/commands/bank.open.v1", R"({"owner":"mallory"})");
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(refused.error_code(), "permission_denied");
  auto accepted = c.post("/commands/bank.open.v1", R"({"owner":"ada"})");
  EXPECT_EQ(accepted.status, 200);
}

// Refuses every bank.deposited.v1 event published by hand.
class RejectPublishedDeposits final : public Behavior {
 public:
  void handle(catga::Request& request, Next& next) override {
    if (request.as<bank::Deposited>()) return next.reject(Error{Code::permission_denied, "no hand-made deposits"});
    next();
  }
};

// Regression: POST /events/{wire} answered 202 whatever publishing returned.
TEST(HttpServerBehaviours, AFailedPublishIsAnsweredWithItsError) {
  GenericEndpointsWith service(std::make_unique<RejectPublishedDeposits>());
  auto c = service.client();
  auto refused = c.post("/events/bank.deposited.v1", R"({"account":1,"amount":2,"balance":3})");
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(refused.error_code(), "permission_denied");
  auto undecodable = c.post("/events/bank.deposited.v1", R"({"account":"one"})");
  EXPECT_EQ(undecodable.status, 400) << undecodable.body;
  EXPECT_EQ(undecodable.error_code(), "invalid_argument");
}

}  // namespace
}  // namespace catga::testing
