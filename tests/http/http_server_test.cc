// catga::http::Server over an in-memory Application, through real sockets
// (http_server_fixture.hpp): typed routes, events, and handler errors mapped
// to statuses. The other subjects, each in its own file:
// http_server_bad_input_test.cc, http_server_endpoints_test.cc (raw handlers,
// generic message endpoints), http_server_admin_test.cc (health, metrics,
// cluster admin), http_server_connections_test.cc (connections, stop,
// start) and http_server_behaviours_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "http/http_server_fixture.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(HttpServerTest, TypedRoutesSendCommandsAndQueriesAndRenderJson) {
  auto c = client();
  auto opened = c.post("/accounts", R"({"owner":"ada","initial":10})");
  ASSERT_EQ(opened.status, 201) << opened.body;
  EXPECT_EQ(opened.header("Content-Type"), "application/json");
  ASSERT_TRUE(opened.header("X-Catga-Index"));
  EXPECT_GT(std::stoull(*opened.header("X-Catga-Index")), 0u);
  auto account = opened.json();
  EXPECT_EQ(account["owner"], "ada");
  EXPECT_EQ(account["balance"], 10);
  const auto id = account["id"].get<std::uint64_t>();

  auto deposited = c.post("/accounts/" + std::to_string(id) + "/deposits", R"({"amount":5})");
  ASSERT_EQ(deposited.status, 200) << deposited.body;
  EXPECT_EQ(deposited.json(), 15);

  auto got = c.get("/accounts/" + std::to_string(id));
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json()["balance"], 15);
  EXPECT_FALSE(got.header("X-Catga-Index"));

  auto closed = c.request("DELETE", "/accounts/" + std::to_string(id));
  EXPECT_EQ(closed.status, 204);
  EXPECT_TRUE(closed.body.empty());

  auto gone = c.get("/accounts/" + std::to_string(id));
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.error_code(), "not_found");
}

TEST_F(HttpServerTest, EventRoutesPublishAndAnswer202) {
  auto c = client();
  auto response = c.post("/events/deposited", R"({"account":1,"amount":2,"balance":3})");
  EXPECT_EQ(response.status, 202) << response.body;
  EXPECT_EQ(metrics_.count("bank.deposited.v1", Code::ok), 1u);
}

struct Mapping {
  const char* code;
  int status;
};

class HttpErrorMappingTest : public HttpServerTest, public ::testing::WithParamInterface<Mapping> {};

TEST_P(HttpErrorMappingTest, HandlerErrorsMapToStatusAndErrorBody) {
  auto c = client();
  auto response = c.post(std::string("/fail/") + GetParam().code, "");
  EXPECT_EQ(response.status, GetParam().status) << response.body;
  auto body = response.json();
  EXPECT_EQ(body["error"]["code"], GetParam().code);
  EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr("as asked"));
  EXPECT_EQ(response.header("Retry-After").has_value(), std::string(GetParam().code) == "unavailable");
}

INSTANTIATE_TEST_SUITE_P(Codes, HttpErrorMappingTest,
                         ::testing::Values(Mapping{"invalid_argument", 400}, Mapping{"unauthenticated", 401},
                                           Mapping{"permission_denied", 403}, Mapping{"not_found", 404},
                                           Mapping{"already_exists", 409}, Mapping{"failed_precondition", 409},
                                           Mapping{"resource_exhausted", 429}, Mapping{"internal", 500},
                                           Mapping{"unavailable", 503}, Mapping{"deadline_exceeded", 504}),
                         [](const auto& info) { return std::string(info.param.code); });

}  // namespace
}  // namespace catga::testing
