// catga::http::Server over an in-memory Application, through real sockets
// (http_server_fixture.hpp): concurrent keep-alive connections, pipelining,
// connections ending in every way, stop(); and what start() reports (a busy
// port, invalid options and routes, cluster admin beyond loopback).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "http/http_server_fixture.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;
using http::Request;
using http::Responder;

TEST_F(HttpServerTest, ConcurrentKeepAliveConnections) {
  constexpr int kClients = 4, kRequests = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      HttpClient c(server_->port());
      for (int i = 0; i < kRequests; ++i) {
        auto opened = c.post("/accounts", R"({"owner":"c)" + std::to_string(t) + R"("})");
        auto got = c.get("/accounts/" + std::to_string(opened.json()["id"].get<std::uint64_t>()));
        if (opened.status == 201 && got.status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
  EXPECT_EQ(metrics_.count("bank.open.v1", Code::ok), static_cast<std::uint64_t>(kClients * kRequests));
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  auto c = client();
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += HttpClient::format("POST", "/accounts", R"({"owner":"p)" + std::to_string(i) + R"("})");
  c.send_raw(batch);
  for (int i = 0; i < 10; ++i) {
    auto response = c.read_response();
    ASSERT_EQ(response.status, 201) << response.body;
    EXPECT_EQ(response.json()["owner"], "p" + std::to_string(i));
  }
}

std::size_t open_descriptors() {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}

// A server that runs for months sees millions of connections, many of them
// ending badly. Each kind of ending returns its descriptor: after 400
// connections the process holds as many as after the first.
TEST_F(HttpServerTest, ConnectionsEndingInEveryWayLeaveNoDescriptorBehind) {
  ASSERT_EQ(client().get("/health/live").status, 200);
  const std::size_t level = open_descriptors();
  for (int i = 0; i < 400; ++i) {
    HttpClient c(server_->port());
    switch (i % 4) {
      case 0:  // a whole request, answered, then closed by the client
        ASSERT_EQ(c.post("/accounts", R"({"owner":"churn"})").status, 201);
        break;
      case 1:  // garbage: the server answers 400 or closes
        c.send_raw("\x16\x03\x01 not http at all\r\n\r\n");
        break;
      case 2:  // half a request, then the client goes away
        c.send_raw("POST /accounts HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"own");
        break;
      case 3:  // connected, nothing sent
        break;
    }
  }
  EXPECT_TRUE(testsupport::wait_for([&] { return open_descriptors() <= level + 2; }, std::chrono::seconds(15)))
      << open_descriptors() << " descriptors open after 400 connections; " << level << " before";
  EXPECT_EQ(client().get("/health/live").status, 200);
}

TEST_F(HttpServerTest, StopIsIdempotentAndRefusesNewConnections) {
  const auto port = server_->port();
  server_->stop();
  server_->stop();
  EXPECT_THROW(HttpClient{port}, std::system_error);
}

// ---------------------------------------------------------------- start()

class HttpServerStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catga::ApplicationBuilder<bank::State> builder;
    bank::register_handlers(builder).in_memory();
    auto app = builder.build();
    ASSERT_TRUE(app) << app.error();
    app_ = std::move(*app);
  }
  std::unique_ptr<Application> app_;
};

TEST_F(HttpServerStartTest, ABusyPortIsReportedClearly) {
  http::Server first(*app_);
  ASSERT_TRUE(first.start());
  http::Server second(*app_, {.port = first.port()});
  auto started = second.start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code(), Code::unavailable);
  EXPECT_THAT(started.error().message(), HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(first.port())));
}

TEST_F(HttpServerStartTest, InvalidOptionsAndRoutesAreReported) {
  http::Server bad_address(*app_, {.address = "localhost"});
  EXPECT_THAT(bad_address.start().error().message(), HasSubstr("not an IP address"));
  http::Server no_threads(*app_, {.threads = 0});
  EXPECT_THAT(no_threads.start().error().message(), HasSubstr("ServerOptions::threads"));

  http::Server routes(*app_);
  auto noop = [](const Request&, Responder r) { r.empty(204); };
  routes.get("no-slash", noop).get("/a/{id}", noop).get("/a/{other}", noop).get("/b/{x}/{x}", noop);
  auto started = routes.start();
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message(), HasSubstr("must start with '/'"));
  EXPECT_THAT(started.error().message(), HasSubstr("clashes with the route /a/{id}"));
  EXPECT_THAT(started.error().message(), HasSubstr("{x} appears twice"));
}

TEST_F(HttpServerStartTest, ClusterAdminBeyondLoopbackNeedsAToken) {
  http::Server server(*app_, {.address = "0.0.0.0"});
  server.map_cluster_admin();
  auto started = server.start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code(), Code::failed_precondition);
  EXPECT_THAT(started.error().message(), HasSubstr("admin_token"));
}

}  // namespace
}  // namespace catga::testing
