// The HTTP layer's pure parts: routing, URL decoding, JSON <-> MessagePack,
// Metrics and its Prometheus rendering, Request and Responder without a server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "catga/metrics.hpp"
#include "http/json_codec.hpp"
#include "http/router.hpp"
#include "http/transport_access.hpp"

namespace catga::http::internal {
namespace {

using ::testing::HasSubstr;

Server::Handler noop() {
  return [](const Request&, Responder r) { r.empty(204); };
}

TEST(Router, LiteralsBeatParametersAndParametersAreDecoded) {
  Router router;
  ASSERT_TRUE(router.add(Method::get, "/orders/{id}", noop()));
  ASSERT_TRUE(router.add(Method::get, "/orders/recent", noop()));
  ASSERT_TRUE(router.add(Method::post, "/orders", noop()));
  Router::Match match;
  std::string allow;
  ASSERT_EQ(router.match(Method::get, "/orders/recent", match, allow), Router::Outcome::matched);
  EXPECT_EQ(match.pattern, "/orders/recent");
  ASSERT_EQ(router.match(Method::get, "/orders/a%2Fb", match, allow), Router::Outcome::matched);
  EXPECT_EQ(match.pattern, "/orders/{id}");
  ASSERT_EQ(match.params.size(), 1u);
  EXPECT_EQ(match.params[0].first, "id");
  EXPECT_EQ(match.params[0].second, "a/b");
  EXPECT_EQ(router.match(Method::get, "/orders/", match, allow), Router::Outcome::no_route);
  EXPECT_EQ(router.match(Method::get, "/orders/x/y", match, allow), Router::Outcome::no_route);
  EXPECT_EQ(router.match(Method::get, "/orders/%zz", match, allow), Router::Outcome::bad_path);
  EXPECT_EQ(router.match(Method::del, "/orders", match, allow), Router::Outcome::wrong_method);
  EXPECT_EQ(allow, "POST");
}

TEST(Router, RejectsMalformedAndClashingPatterns) {
  Router router;
  ASSERT_TRUE(router.add(Method::get, "/a/{id}", noop()));
  EXPECT_EQ(router.add(Method::get, "/a/{name}", noop()).error().code(), Code::already_exists);
  EXPECT_TRUE(router.add(Method::post, "/a/{name}", noop()));
  EXPECT_EQ(router.add(Method::get, "a", noop()).error().code(), Code::invalid_argument);
  EXPECT_EQ(router.add(Method::get, "/{}", noop()).error().code(), Code::invalid_argument);
  EXPECT_EQ(router.add(Method::get, "/x{y}", noop()).error().code(), Code::invalid_argument);
  EXPECT_EQ(router.add(Method::get, "/b", Server::Handler{}).error().code(), Code::invalid_argument);
}

// Only the transport makes requests and responders: their constructors are
// not part of the public API (internal::RequestAccess, ResponderAccess).
static_assert(!std::is_constructible_v<Request, RequestParts>);
static_assert(!std::is_constructible_v<Responder, std::unique_ptr<PendingResponse>>);

// What a transport was asked to write.
struct RecordedResponse final : PendingResponse {
  explicit RecordedResponse(std::vector<std::pair<int, std::string>>* sent) : sent(sent) {}
  void send(int status, std::string body, std::string_view, Headers) noexcept override {
    sent->emplace_back(status, std::move(body));
  }
  std::vector<std::pair<int, std::string>>* sent;
};

TEST(Transport, RequestsAndRespondersAreMadeThroughTheInternalDoors) {
  RequestParts parts;
  parts.method = Method::post;
  parts.path = "/orders/7";
  parts.route = "/orders/{id}";
  parts.params = {{"id", "7"}};
  const Request request = RequestAccess::make(std::move(parts));
  EXPECT_EQ(request.method(), Method::post);
  EXPECT_EQ(request.param<int>("id"), 7);

  std::vector<std::pair<int, std::string>> sent;
  {
    Responder answered = ResponderAccess::make(std::make_unique<RecordedResponse>(&sent));
    answered.empty(204);
    answered.empty(200);  // a second answer is ignored
    EXPECT_TRUE(answered.responded());
    Responder forgotten = ResponderAccess::make(std::make_unique<RecordedResponse>(&sent));
    EXPECT_FALSE(forgotten.responded());
  }
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].first, 204);
  EXPECT_EQ(sent[1].first, 500);
  EXPECT_THAT(sent[1].second, HasSubstr("the handler did not respond"));
}

TEST(Query, DecodesPairsAndRejectsBadEscapes) {
  auto q = parse_query("a=1&b=x%20y+z&flag&&c=");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->size(), 4u);
  EXPECT_EQ((*q)[1], (std::pair<std::string, std::string>{"b", "x y z"}));
  EXPECT_EQ((*q)[2], (std::pair<std::string, std::string>{"flag", ""}));
  EXPECT_FALSE(parse_query("a=%4"));
  EXPECT_FALSE(parse_query("a=%G1"));
}

struct Keyed {
  std::map<std::uint64_t, std::string> names;
  std::string blob;
  double ratio = 0;
  MSGPACK_DEFINE_MAP(names, blob, ratio);
};

TEST(JsonCodec, RendersIntegerKeysBinaryAndNumbers) {
  std::string out;
  Keyed k{.names = {{7, "seven"}}, .blob = "x", .ratio = 0.5};
  ASSERT_TRUE(msgpack_to_json(encode(k), out));
  EXPECT_EQ(out, R"({"blob":"x","names":{"7":"seven"},"ratio":0.5})");

  std::string bin;
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_bin(3);
  packer.pack_bin_body("abc", 3);
  ASSERT_TRUE(msgpack_to_json(std::string_view(buffer.data(), buffer.size()), bin));
  EXPECT_EQ(bin, R"("YWJj")");
}

TEST(JsonCodec, JsonBecomesMessagePackThatTheCodecDecodes) {
  auto bytes = json_to_msgpack(R"({"ratio": 2, "blob": "b\u00e9", "names": {}})");
  ASSERT_TRUE(bytes) << bytes.error();
  auto decoded = decode<Keyed>(*bytes);
  ASSERT_TRUE(decoded) << decoded.error();
  EXPECT_EQ(decoded->blob, "b\xc3\xa9");
  EXPECT_EQ(decoded->ratio, 2.0);
}

TEST(JsonCodec, MalformedOrTooDeepJsonIsInvalidArgument) {
  auto malformed = json_to_msgpack("{\"a\":");
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code(), Code::invalid_argument);
  EXPECT_THAT(malformed.error().message(), HasSubstr("malformed JSON"));
  std::string deep = std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  EXPECT_THAT(json_to_msgpack(deep).error().message(), HasSubstr("nesting deeper than"));
  std::string fine = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(json_to_msgpack(fine));
  // Brackets inside strings do not count.
  EXPECT_TRUE(json_to_msgpack("\"" + std::string(1000, '[') + "\""));
}

TEST(JsonCodec, ErrorBodyEscapesTheMessage) {
  EXPECT_EQ(error_json(Error{Code::not_found, "say \"hi\"\n"}),
            R"({"error":{"code":"not_found","message":"say \"hi\"\n"}})");
}

TEST(Metrics, CountsByCodeAndRendersPrometheusText) {
  Metrics metrics;
  metrics.record(MessageKind::command, "a.b.v1", Code::ok, std::chrono::microseconds(80));
  metrics.record(MessageKind::command, "a.b.v1", Code::ok, std::chrono::milliseconds(3));
  metrics.record(MessageKind::command, "a.b.v1", Code::not_found, std::chrono::seconds(20));
  EXPECT_EQ(metrics.count("a.b.v1", Code::ok), 2u);
  EXPECT_EQ(metrics.count("a.b.v1", Code::not_found), 1u);
  EXPECT_EQ(metrics.count("x.v1", Code::ok), 0u);
  std::string text;
  metrics.render_prometheus(text);
  EXPECT_THAT(text, HasSubstr(R"(catga_messages_total{kind="command",message="a.b.v1",code="ok"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_messages_total{kind="command",message="a.b.v1",code="not_found"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_message_duration_seconds_bucket{kind="command",message="a.b.v1",le="0.0001"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_message_duration_seconds_bucket{kind="command",message="a.b.v1",le="10"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_message_duration_seconds_bucket{kind="command",message="a.b.v1",le="+Inf"} 3)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_message_duration_seconds_count{kind="command",message="a.b.v1"} 3)"));
}

TEST(Metrics, BoundsTheNumberOfSeries) {
  Metrics metrics;
  for (std::size_t i = 0; i < Metrics::kMaxSeries + 10; ++i) {
    metrics.record(MessageKind::query, "q" + std::to_string(i) + ".v1", Code::ok, std::chrono::microseconds(1));
  }
  EXPECT_EQ(metrics.count("q0.v1", Code::ok), 1u);
  EXPECT_EQ(metrics.count("_other", Code::ok), 10u);
}

TEST(Metrics, RecordsConcurrently) {
  Metrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        metrics.record(MessageKind::command, (i + t) % 2 ? "odd.v1" : "even.v1", Code::ok, std::chrono::microseconds(i));
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(metrics.count("odd.v1", Code::ok) + metrics.count("even.v1", Code::ok), 40000u);
}

}  // namespace
}  // namespace catga::http::internal
