// catga::http::Server over an in-memory Application, through real sockets
// (http_server_fixture.hpp): bad input — malformed, too deep or mistyped JSON,
// other media types, bodies over the limit (sized, far beyond it, chunked),
// bad path parameters, unknown routes and wrong methods.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <fstream>
#include <string>

#include "http/http_server_fixture.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(HttpServerTest, MalformedJsonIs400) {
  auto c = client();
  auto response = c.post("/accounts", R"({"owner": "ada",)");
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(response.error_code(), "invalid_argument");
  EXPECT_THAT(response.json()["error"]["message"].get<std::string>(), HasSubstr("malformed JSON"));
}

TEST_F(HttpServerTest, DeeplyNestedJsonIsRefusedBeforeParsing) {
  auto c = client();
  auto response = c.post("/accounts", std::string(100000, '['));
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("nesting deeper than"));
}

TEST_F(HttpServerTest, WrongFieldTypeIs400) {
  auto c = client();
  auto response = c.post("/accounts", R"({"owner": 12})");
  EXPECT_EQ(response.status, 400) << response.body;
  EXPECT_EQ(response.error_code(), "invalid_argument");
}

TEST_F(HttpServerTest, NonJsonContentTypeIs415) {
  auto c = client();
  auto response = c.request("POST", "/accounts", "owner=ada", {}, "application/x-www-form-urlencoded");
  EXPECT_EQ(response.status, 415);
  EXPECT_EQ(response.error_code(), "invalid_argument");
  auto generic = c.request("POST", "/commands/bank.open.v1", "owner: ada", {}, "text/plain");
  EXPECT_EQ(generic.status, 415);
  // A JSON media type with parameters is fine.
  auto ok = c.request("POST", "/accounts", R"({"owner":"ada"})", {}, "application/json; charset=utf-8");
  EXPECT_EQ(ok.status, 201) << ok.body;
}

TEST_F(HttpServerTest, OversizedBodyIs413AndTheServerStaysUsable) {
  build({.max_body_bytes = 1024});
  auto c = client();
  auto response = c.post("/accounts", R"({"owner":")" + std::string(2000, 'x') + R"("})");
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(response.error_code(), "invalid_argument");
  EXPECT_THAT(response.body, HasSubstr("exceeds the limit of 1024"));
  EXPECT_EQ(response.header("Connection"), "close");
  EXPECT_EQ(client().get("/health/live").status, 200);
  // A body exactly at the limit is read and handled.
  auto at_limit = client().post("/accounts", R"({"owner":")" + std::string(1024 - 12, 'x') + R"("})");
  EXPECT_EQ(at_limit.status, 201) << at_limit.body;
}

// Regression: RESTinio dropped the connection without an answer for bodies
// past 4x max_body_bytes, so clients saw an empty reply instead of 413.
TEST_F(HttpServerTest, BodyFarBeyondTheLimitIs413WithConnectionClose) {
  build({.max_body_bytes = 1024});
  for (std::size_t size : {std::size_t{5} * 1024, std::size_t{8} << 20}) {
    auto c = client();
    auto response = c.post("/accounts", std::string(size, 'x'));
    EXPECT_EQ(response.status, 413) << size;
    EXPECT_EQ(response.error_code(), "invalid_argument");
    EXPECT_THAT(response.body, HasSubstr("request body of " + std::to_string(size) + " bytes exceeds the limit of 1024"));
    EXPECT_EQ(response.header("Connection"), "close");
    EXPECT_TRUE(c.closed_by_peer());
  }
  EXPECT_EQ(client().get("/health/live").status, 200);
}

// The peak resident size of this process (test and server), in bytes.
std::size_t peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

TEST_F(HttpServerTest, ABodyOverTheLimitIsDiscardedNotStored) {
  build({.max_body_bytes = 1024});
  constexpr std::size_t kChunk = 1u << 20, kChunks = 256;  // 256 MiB, sent from one 1 MiB buffer
  const std::size_t before = peak_resident_bytes();
  ASSERT_GT(before, 0u);
  auto c = client();
  c.send_raw("POST /accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(kChunk * kChunks) + "\r\n\r\n");
  const std::string chunk(kChunk, 'x');
  for (std::size_t i = 0; i < kChunks; ++i) c.send_raw(chunk);
  auto response = c.read_response();
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(response.header("Connection"), "close");
  // Storing the body would raise the peak by 256 MiB; reading it through a
  // 16 KiB buffer raises it by nothing measurable.
  EXPECT_LT(peak_resident_bytes() - before, std::size_t{64} << 20);
}

TEST_F(HttpServerTest, ChunkedBodyBeyondTheLimitIs413WithConnectionClose) {
  build({.max_body_bytes = 1024});
  auto c = client();
  std::string request = "POST /accounts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(4096, 'x');
  for (int i = 0; i < 256; ++i) request += "1000\r\n" + chunk + "\r\n";  // 1 MiB in 4 KiB chunks
  request += "0\r\n\r\n";
  c.send_raw(request);
  auto response = c.read_response();
  EXPECT_EQ(response.status, 413);
  EXPECT_THAT(response.body, HasSubstr("request body exceeds the limit of 1024 bytes"));
  EXPECT_EQ(response.header("Connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(HttpServerTest, AClientCannotForgeTheOverLimitMark) {
  auto c = client();
  auto response = c.post("/accounts", R"({"owner":"ada"})", {{"Catga-Body-Over-Limit", "1"}});
  EXPECT_EQ(response.status, 201) << response.body;
  auto echoed = c.get("/raw/echo", {{"Catga-Body-Over-Limit", "1"}});
  EXPECT_EQ(echoed.status, 200) << echoed.body;
}

TEST_F(HttpServerTest, BadPathParameterIs400) {
  auto c = client();
  auto response = c.get("/accounts/abc");
  EXPECT_EQ(response.status, 400);
  EXPECT_THAT(response.body, HasSubstr("path parameter 'id' must be an integer"));
}

TEST_F(HttpServerTest, UnknownRouteIs404AndWrongMethodIs405) {
  auto c = client();
  auto missing = c.get("/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.error_code(), "not_found");
  auto wrong = c.request("PUT", "/accounts/1", "{}");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header("Allow"), "GET, DELETE");
}

}  // namespace
}  // namespace catga::testing
