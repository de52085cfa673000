// What the dashboard's tests share (dashboard_test.cc,
// dashboard_browser_test.cc): a server with the dashboard over an
// Application, its GET /cluster/overview, commands to give it something to
// show, and counting in a page's text.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "http/http_test_support.hpp"

namespace catga::testing {

// A started server on 127.0.0.1 with the bank's routes, health, the cluster
// admin endpoints and the dashboard (it borrows `app`).
inline std::unique_ptr<http::Server> serve_dashboard(Application& app) {
  auto server = std::make_unique<http::Server>(app);
  add_bank_routes(*server);
  server->map_health().map_cluster_admin().map_dashboard();
  auto started = server->start();
  EXPECT_TRUE(started) << started.error();
  return server;
}

// GET /cluster/overview (expected to answer 200).
inline nlohmann::json overview(std::uint16_t port) {
  auto response = HttpClient(port).get("/cluster/overview");
  EXPECT_EQ(response.status, 200) << response.body;
  return response.json();
}

// Opens `count` accounts (each a command through the log when replicated).
inline void open_accounts(std::uint16_t port, int count) {
  HttpClient c(port);
  for (int i = 0; i < count; ++i) {
    auto opened = c.post("/accounts", R"({"owner":"dash","initial":1})");
    ASSERT_EQ(opened.status, 201) << opened.body;
  }
}

// How many times `what` occurs in `text`.
inline std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace catga::testing
