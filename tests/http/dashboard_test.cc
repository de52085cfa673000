// The cluster dashboard (Server::map_dashboard): the page and GET
// /cluster/overview through real sockets, on an in-memory Application and on
// a durable one-member node. The page in a browser: dashboard_browser_test.cc.
// Waits are bounded; nothing asserts timing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "http/dashboard_test_support.hpp"
#include "support/cluster.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ------------------------------------------------------------------ the page and the JSON (in memory)

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catga::ApplicationBuilder<bank::State> builder;
    register_test_handlers(builder).in_memory();
    auto app = builder.build();
    ASSERT_TRUE(app) << app.error();
    app_ = std::move(*app);
    server_ = serve_dashboard(*app_);
  }
  void TearDown() override {
    server_.reset();  // before the application it borrows
    app_.reset();
  }

  std::unique_ptr<Application> app_;
  std::unique_ptr<http::Server> server_;
};

TEST_F(DashboardTest, RootServesOneSelfContainedHtmlPage) {
  auto page = HttpClient(server_->port()).get("/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(page.header("Content-Type").value_or(""), StartsWith("text/html"));
  EXPECT_THAT(page.header("Content-Security-Policy").value_or(""), HasSubstr("default-src 'none'"));
  EXPECT_THAT(page.body, StartsWith("<!doctype html>"));
  for (const char* id : {"leader", "conn", "updated", "notice", "role", "term", "commit-index", "applied-index",
                         "throughput", "sparkline", "members", "members-body", "node"}) {
    EXPECT_THAT(page.body, HasSubstr(std::string("id=\"") + id + "\"")) << id;
  }
  EXPECT_THAT(page.body, HasSubstr("cluster/overview"));
  // Nothing is loaded from elsewhere: no src attributes, no stylesheet links,
  // and the only URL is the SVG namespace name.
  EXPECT_THAT(page.body, Not(HasSubstr(" src=")));
  EXPECT_THAT(page.body, Not(HasSubstr("stylesheet")));
  EXPECT_THAT(page.body, Not(HasSubstr("https:")));
  EXPECT_THAT(page.body, Not(HasSubstr("@import")));
  EXPECT_EQ(count_of(page.body, "http://"), count_of(page.body, "http://www.w3.org/2000/svg"));
}

TEST_F(DashboardTest, OverviewDescribesThisNode) {
  auto response = HttpClient(server_->port()).get("/cluster/overview");
  ASSERT_EQ(response.status, 200) << response.body;
  EXPECT_EQ(response.header("Content-Type"), "application/json");
  EXPECT_EQ(response.header("Cache-Control"), "no-store");
  auto o = response.json();
  for (const char* field : {"id", "address", "replicated", "role", "term", "leader", "commit_index", "applied_index",
                            "last_snapshot_index", "ready", "members", "failure", "time_ms", "throughput"}) {
    EXPECT_TRUE(o.contains(field)) << field << " in " << response.body;
  }
  EXPECT_EQ(o["replicated"], false);
  EXPECT_EQ(o["role"], "leader");
  EXPECT_EQ(o["term"], 1);
  EXPECT_EQ(o["leader"]["known"], true);
  EXPECT_TRUE(o["members"].is_array());
  EXPECT_TRUE(o["members"].empty());
  EXPECT_GT(o["time_ms"].get<std::int64_t>(), 0);
  EXPECT_EQ(o["throughput"]["window_s"], 60);
  EXPECT_TRUE(o["throughput"]["points"].is_array());
}

TEST_F(DashboardTest, ThroughputComesFromAppliedIndexDeltas) {
  const auto before = overview(server_->port());  // the first sample
  const auto applied = before["applied_index"].get<std::uint64_t>();
  ASSERT_TRUE(before["throughput"]["points"].empty());
  open_accounts(server_->port(), 3);
  // The next sample is taken once the last is about a second old.
  nlohmann::json after;
  ASSERT_TRUE(testsupport::wait_for(
      [&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        after = overview(server_->port());
        return !after["throughput"]["points"].empty();
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(after["applied_index"].get<std::uint64_t>(), applied + 3);
  EXPECT_EQ(after["commit_index"], after["applied_index"]);
  const auto& points = after["throughput"]["points"];
  ASSERT_EQ(points.size(), 1u);
  EXPECT_GT(points[0]["per_second"].get<double>(), 0.0);
  EXPECT_LE(points[0]["at_ms"].get<std::int64_t>(), after["time_ms"].get<std::int64_t>());
}

TEST(DashboardRoutes, ClashWithAnApplicationRootRouteIsReportedByStart) {
  catga::ApplicationBuilder<bank::State> builder;
  register_test_handlers(builder).in_memory();
  auto app = builder.build();
  ASSERT_TRUE(app) << app.error();
  {
    http::Server server(**app);
    server.get("/", [](const http::Request&, http::Responder responder) { responder.json(200, "{}"); }).map_dashboard();
    auto started = server.start();
    ASSERT_FALSE(started);
    EXPECT_EQ(started.error().code(), Code::already_exists);
    EXPECT_THAT(started.error().message(), HasSubstr("GET /"));
  }
}

// ------------------------------------------------------------------ a durable node

class DashboardDurableNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catga::ApplicationBuilder<bank::State> builder;
    register_test_handlers(builder).data_dir(dir_.path() / "node");
    auto app = builder.build();
    ASSERT_TRUE(app) << app.error();
    app_ = std::move(*app);
    server_ = serve_dashboard(*app_);
    ASSERT_TRUE(wait_ready(server_->port()));
  }
  void TearDown() override {
    server_.reset();
    app_.reset();
  }

  testsupport::TempDir dir_;
  std::unique_ptr<Application> app_;
  std::unique_ptr<http::Server> server_;
};

TEST_F(DashboardDurableNodeTest, OverviewListsTheMemberAsLeaderAndSelf) {
  auto o = overview(server_->port());
  const NodeStatus s = app_->status();
  EXPECT_EQ(o["replicated"], true);
  EXPECT_EQ(o["role"], "leader");
  EXPECT_EQ(o["id"], s.id);
  EXPECT_GE(o["term"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(o["leader"]["known"], true);
  EXPECT_EQ(o["leader"]["id"], s.id);
  EXPECT_GE(o["commit_index"].get<std::uint64_t>(), 1u);
  ASSERT_EQ(o["members"].size(), 1u);
  const auto& m = o["members"][0];
  EXPECT_EQ(m["id"], s.id);
  EXPECT_EQ(m["role"], "voter");
  EXPECT_EQ(m["is_leader"], true);
  EXPECT_EQ(m["is_self"], true);
  EXPECT_EQ(m["reachable"], true);
}

}  // namespace
}  // namespace catga::testing
