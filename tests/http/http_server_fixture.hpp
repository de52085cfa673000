// The fixture of the catga::http::Server tests (http_server_test.cc,
// http_server_bad_input_test.cc, http_server_endpoints_test.cc,
// http_server_admin_test.cc, http_server_connections_test.cc): an in-memory bank Application behind a
// started Server on 127.0.0.1 with the bank's typed routes, health, metrics,
// the generic message endpoints, the cluster admin endpoints (token
// "s3cret") and a few raw routes. A test may build() it again with other
// ServerOptions.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "http/http_test_support.hpp"

namespace catga::testing {

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { build(); }

  void build(http::ServerOptions options = {}) {
    server_.reset();  // before the application it borrows
    catga::ApplicationBuilder<bank::State> builder;
    register_test_handlers(builder).use(metrics_.behavior()).in_memory();
    auto app = builder.build();
    ASSERT_TRUE(app) << app.error();
    app_ = std::move(*app);
    if (options.admin_token.empty()) options.admin_token = "s3cret";
    server_ = std::make_unique<http::Server>(*app_, options);
    add_bank_routes(*server_);
    server_->map_health().map_metrics(&metrics_).map_message_endpoints().map_cluster_admin();
    add_raw_routes();
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error();
    ASSERT_NE(server_->port(), 0);
  }

  void add_raw_routes() {
    server_->get("/raw/echo", [](const http::Request& r, http::Responder respond) {
      nlohmann::json body = {{"path", r.path()},
                             {"route", r.route()},
                             {"limit", r.query<int>("limit").value_or(-1)},
                             {"name", std::string(r.query("name").value_or(""))},
                             {"agent", std::string(r.header("x-test-agent").value_or(""))}};
      if (r.failure()) return respond.fail(*r.failure());
      respond.json(200, body.dump(), {{"X-Raw", "yes"}});
    });
    server_->get("/raw/later", [](const http::Request&, http::Responder respond) {
      std::thread([respond = std::move(respond)]() mutable { respond.json(202, R"({"later":true})"); }).detach();
    });
    server_->post("/events/deposited", [](const http::Request& r) { return r.json<bank::Deposited>(); });
    server_->get("/raw/forgets", [](const http::Request&, http::Responder) {});
    server_->get("/raw/throws", [](const http::Request&, http::Responder) { throw std::runtime_error("boom"); });
  }

  HttpClient client() { return HttpClient(server_->port()); }

  Metrics metrics_;
  std::unique_ptr<Application> app_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace catga::testing
