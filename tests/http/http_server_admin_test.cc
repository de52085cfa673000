// catga::http::Server over an in-memory Application, through real sockets
// (http_server_fixture.hpp): the health endpoints, the Prometheus metrics and
// the cluster admin endpoints behind their bearer token.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "http/http_server_fixture.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;

TEST_F(HttpServerTest, HealthEndpointsReportAnInMemoryLeader) {
  auto c = client();
  auto health = c.get("/health");
  ASSERT_EQ(health.status, 200) << health.body;
  auto body = health.json();
  EXPECT_EQ(body["status"], "healthy");
  EXPECT_EQ(body["role"], "leader");
  EXPECT_EQ(body["consensus_reachable"], true);
  EXPECT_EQ(body["replicated"], false);
  EXPECT_TRUE(body.contains("commit_index"));
  EXPECT_TRUE(body.contains("applied_index"));
  EXPECT_TRUE(body["leader"].contains("address"));
  EXPECT_EQ(c.get("/health/live").status, 200);
  EXPECT_EQ(c.get("/health/ready").status, 200);
}

TEST_F(HttpServerTest, MetricsExposeMessageHttpAndNodeSeries) {
  auto c = client();
  ASSERT_EQ(c.post("/accounts", R"({"owner":"ada"})").status, 201);
  ASSERT_EQ(c.get("/accounts/99").status, 404);
  ASSERT_EQ(c.post("/commands/bank.open.v1", R"({"owner":"bob"})").status, 200);
  auto response = c.get("/metrics");
  ASSERT_EQ(response.status, 200);
  EXPECT_THAT(*response.header("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const std::string& text = response.body;
  EXPECT_THAT(text, HasSubstr(R"(catga_messages_total{kind="command",message="bank.open.v1",code="ok"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_messages_total{kind="query",message="bank.get.v1",code="not_found"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_message_duration_seconds_bucket{kind="command",message="bank.open.v1",le="+Inf"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_message_duration_seconds_count{kind="query",message="bank.get.v1"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_http_requests_total{method="POST",route="/accounts",status="201"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_http_requests_total{method="GET",route="/accounts/{id}",status="404"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(catga_http_request_duration_seconds_count{method="POST",route="/accounts"} 1)"));
  EXPECT_THAT(text, HasSubstr("catga_node_term 1\n"));
  EXPECT_THAT(text, HasSubstr("catga_node_ready 1\n"));
  EXPECT_THAT(text, HasSubstr(R"(catga_node_role{role="leader"} 1)"));
  EXPECT_THAT(text, HasSubstr("# TYPE catga_message_duration_seconds histogram"));
  for (const char* series : {"catga_raft_records_appended_total", "catga_commands_forwarded_total",
                             "catga_commands_retried_total", "catga_leader_changes_total", "catga_snapshots_taken_total",
                             "catga_snapshot_encode_seconds", "catga_node_bytes_since_snapshot",
                             "catga_snapshot_pause_seconds", "catga_snapshot_pause_max_seconds", "catga_snapshot_bytes",
                             "catga_snapshots_in_child_total", "catga_snapshots_sent_total",
                             "catga_snapshot_sends_skipped_total", "catga_snapshot_write_failures_total"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + series)) << series;
  }
  EXPECT_EQ(metrics_.count("bank.open.v1", Code::ok), 2u);
}

TEST_F(HttpServerTest, ClusterAdminRequiresTheBearerToken) {
  auto c = client();
  auto status = c.get("/raft/status");
  ASSERT_EQ(status.status, 200);
  EXPECT_EQ(status.json()["role"], "leader");
  EXPECT_TRUE(status.json().contains("bytes_since_snapshot")) << status.body;

  auto anonymous = c.post("/raft/snapshot", "");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.error_code(), "unauthenticated");
  EXPECT_EQ(anonymous.header("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(c.post("/raft/snapshot", "", {{"Authorization", "Bearer wrong"}}).status, 401);
  EXPECT_EQ(c.post("/raft/snapshot", "", {{"Authorization", "Basic s3cret"}}).status, 401);
  EXPECT_EQ(c.request("DELETE", "/raft/members/2").status, 401);

  const HttpClient::Headers auth = {{"Authorization", "Bearer s3cret"}};
  auto snapshot = c.post("/raft/snapshot", "", auth);  // an in-memory application has no log
  EXPECT_EQ(snapshot.status, 409);
  EXPECT_EQ(snapshot.error_code(), "failed_precondition");
  EXPECT_EQ(c.post("/raft/members", R"({"id":0,"address":"127.0.0.1:9000"})", auth).status, 400);
  EXPECT_EQ(c.post("/raft/members", R"({"id":4,"address":"127.0.0.1:9000","role":"boss"})", auth).status, 400);
  EXPECT_EQ(c.post("/raft/members", "{", auth).status, 400);
  EXPECT_EQ(c.request("DELETE", "/raft/members/x", {}, auth).status, 400);
  EXPECT_EQ(c.request("PUT", "/raft/members/2/role", R"({"role":"boss"})", auth).status, 400);
  // Valid requests reach the application, which has no Raft node in memory.
  auto add = c.post("/raft/members", R"({"id":4,"address":"127.0.0.1:9000"})", auth);
  EXPECT_EQ(add.status, 409);
  EXPECT_EQ(add.error_code(), "failed_precondition");
  EXPECT_EQ(c.request("PUT", "/raft/members/2/role", R"({"role":"standby"})", auth).status, 409);
  EXPECT_EQ(c.request("DELETE", "/raft/members/2", {}, auth).status, 409);
  EXPECT_EQ(c.post("/raft/leadership", R"({"to":2})", auth).status, 409);
}

}  // namespace
}  // namespace catga::testing
