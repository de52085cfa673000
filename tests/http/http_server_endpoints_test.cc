// catga::http::Server over an in-memory Application, through real sockets
// (http_server_fixture.hpp): raw handlers (query, headers, answers from
// another thread, handlers that forget to answer or throw) and the generic
// message endpoints (/commands, /queries, /events, /messages), with their
// consistency and idempotency checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "http/http_server_fixture.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(HttpServerTest, RawHandlersSeeQueryHeadersAndParams) {
  auto c = client();
  auto response = c.get("/raw/echo?limit=7&name=a%20b+c", {{"X-Test-Agent", "gtest"}});
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.header("X-Raw"), "yes");
  auto body = response.json();
  EXPECT_EQ(body["limit"], 7);
  EXPECT_EQ(body["name"], "a b c");
  EXPECT_EQ(body["agent"], "gtest");
  EXPECT_EQ(body["route"], "/raw/echo");
  EXPECT_EQ(c.get("/raw/echo?limit=x").status, 400);
}

TEST_F(HttpServerTest, RawHandlersMayAnswerFromAnotherThread) {
  auto c = client();
  auto response = c.get("/raw/later");
  EXPECT_EQ(response.status, 202);
  EXPECT_EQ(response.json()["later"], true);
}

TEST_F(HttpServerTest, AHandlerThatDoesNotRespondOrThrowsGets500) {
  auto c = client();
  auto forgot = c.get("/raw/forgets");
  EXPECT_EQ(forgot.status, 500);
  EXPECT_THAT(forgot.body, HasSubstr("did not respond"));
  EXPECT_EQ(c.get("/raw/throws").status, 500);
  EXPECT_EQ(c.get("/health/live").status, 200);
}

TEST_F(HttpServerTest, GenericEndpointsSendAnyRegisteredMessage) {
  auto c = client();
  auto opened = c.post("/commands/bank.open.v1", R"({"owner":"bob","initial":3})");
  ASSERT_EQ(opened.status, 200) << opened.body;
  ASSERT_TRUE(opened.header("X-Catga-Index"));
  const auto id = opened.json()["id"].get<std::uint64_t>();

  auto got = c.post("/queries/bank.get.v1", R"({"account":)" + std::to_string(id) + "}");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.json()["owner"], "bob");

  auto closed = c.post("/commands/bank.close.v1", R"({"account":)" + std::to_string(id) + "}");
  EXPECT_EQ(closed.status, 204) << closed.body;

  auto again = c.post("/commands/bank.close.v1", R"({"account":)" + std::to_string(id) + "}");
  EXPECT_EQ(again.status, 404);
  EXPECT_EQ(again.error_code(), "not_found");

  auto bad_payload = c.post("/commands/bank.open.v1", R"({"owner":[1,2]})");
  EXPECT_EQ(bad_payload.status, 400) << bad_payload.body;
}

TEST_F(HttpServerTest, GenericEndpointsReportUnknownWireNamesAs404Unimplemented) {
  auto c = client();
  auto unknown = c.post("/commands/nope.v1", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error_code(), "unimplemented");
  auto wrong_kind = c.post("/queries/bank.open.v1", "{}");
  EXPECT_EQ(wrong_kind.status, 404);
  EXPECT_EQ(wrong_kind.error_code(), "unimplemented");
}

TEST_F(HttpServerTest, GenericEventEndpointReportsAnUnknownWireNameAs404) {
  auto c = client();
  auto unknown = c.post("/events/nope.v1", "{}");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(unknown.error_code(), "unimplemented");
  auto wrong_kind = c.post("/events/bank.open.v1", "{}");
  EXPECT_EQ(wrong_kind.status, 404) << wrong_kind.body;
}

TEST_F(HttpServerTest, MessagesListsRegisteredWireNames) {
  auto c = client();
  auto response = c.get("/messages");
  ASSERT_EQ(response.status, 200);
  EXPECT_THAT(response.body, HasSubstr(R"({"kind":"command","wire_name":"bank.open.v1"})"));
  EXPECT_THAT(response.body, HasSubstr(R"({"kind":"query","wire_name":"bank.get.v1"})"));
}

TEST_F(HttpServerTest, QueryConsistencyIsValidated) {
  auto c = client();
  ASSERT_EQ(c.post("/accounts", R"({"owner":"ada"})").status, 201);
  EXPECT_EQ(c.get("/accounts/1?consistency=linearizable").status, 200);
  EXPECT_EQ(c.get("/accounts/1?consistency=read_your_writes&min_index=1").status, 200);
  EXPECT_EQ(c.get("/accounts/1", {{"X-Catga-Min-Index", "1"}}).status, 200);
  auto bogus = c.get("/accounts/1?consistency=eventual");
  EXPECT_EQ(bogus.status, 400);
  EXPECT_THAT(bogus.body, HasSubstr("local, read_your_writes or linearizable"));
  EXPECT_EQ(c.get("/accounts/1?min_index=-1").status, 400);
  EXPECT_EQ(c.get("/accounts/1", {{"X-Catga-Min-Index", "x"}}).status, 400);
  EXPECT_EQ(c.post("/queries/bank.get.v1?consistency=eventual", R"({"account":1})").status, 400);
}

TEST_F(HttpServerTest, InvalidIdempotencyKeyIs400) {
  auto c = client();
  auto response = c.post("/accounts", R"({"owner":"ada"})", {{"Idempotency-Key", std::string(300, 'k')}});
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("Idempotency-Key"));
}

}  // namespace
}  // namespace catga::testing
