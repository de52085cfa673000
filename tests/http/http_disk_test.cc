// The snapshot endpoints on a full disk, through real sockets: a durable
// single-node Application whose data directory sits on a small loop-mounted
// ext4 filesystem (tests/cluster/small_disk.hpp; needs root, skips saying why
// otherwise), behind a catga::http::Server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <vector>

#include "cluster/small_disk.hpp"
#include "http/http_test_support.hpp"

namespace catga::testing {
namespace {

using ::testing::HasSubstr;
using testsupport::wait_for;
using namespace std::chrono_literals;

constexpr unsigned kDiskMiB = 128;  // libraft's preallocated segments, the state, room for its snapshot

struct Node {
  std::unique_ptr<catga::Application> app;
  std::unique_ptr<http::Server> server;

  static Node open(const std::filesystem::path& data, std::chrono::milliseconds request_timeout) {
    Node n;
    catga::ApplicationBuilder<bank::State> b;
    bank::register_handlers(b).data_dir(data);
    auto app = b.build();
    EXPECT_TRUE(app.has_value()) << (app ? "" : app.error().to_string());
    if (!app) return n;
    n.app = std::move(*app);
    EXPECT_TRUE(wait_for([&] { return n.app->status().ready; }));
    n.server = std::make_unique<http::Server>(*n.app, http::ServerOptions{.request_timeout = request_timeout});
    add_bank_routes(*n.server);
    n.server->map_cluster_admin();
    auto started = n.server->start();
    EXPECT_TRUE(started.has_value()) << (started ? "" : started.error().to_string());
    return n;
  }
  // The server goes before the application it borrows.
  void close() {
    server.reset();
    app.reset();
  }
};

// A snapshot libraft cannot write (the disk is full) makes POST /raft/snapshot and
// POST /raft/backup answer 504 deadline_exceeded within the request timeout,
// naming the likely cause — not a connection closed without an answer (the
// library's 30 s wait outlasted the transport's hold on the request). Once
// space is back the snapshot is written and answered, and nothing acknowledged
// is lost across a restart.
TEST(HttpDisk, SnapshotOnAFullDiskAnswersDeadlineExceededWithinTheRequestTimeout) {
  std::string why;
  auto disk = SmallDisk::create(kDiskMiB, why);
  if (!disk) GTEST_SKIP() << why;
  const auto data = disk->path() / "data";
  constexpr auto kRequestTimeout = 2s;
  std::vector<std::uint64_t> acknowledged;
  {
    Node n = Node::open(data, kRequestTimeout);
    ASSERT_TRUE(n.server);
    // About 12 MiB of state; 4 MiB left free: the log goes on in the space
    // libraft preallocated, the snapshot does not fit.
    const std::string big_owner(32 << 10, 'o');
    for (int i = 0; i < 384; ++i) {
      auto a = n.app->send(bank::Open{.owner = big_owner + std::to_string(i), .initial = i});
      ASSERT_TRUE(a.has_value()) << a.error();
      acknowledged.push_back(a->id);
    }
    disk->fill(4 << 20);
    // The client waits far longer than the server may: a hang fails here.
    HttpClient c(n.server->port(), 60s);
    auto snapshot = c.post("/raft/snapshot", "");
    std::cerr << "POST /raft/snapshot on a full disk -> " << snapshot.status << " " << snapshot.body << "\n";
    EXPECT_EQ(snapshot.status, 504);
    EXPECT_EQ(snapshot.error_code(), "deadline_exceeded");
    EXPECT_THAT(snapshot.body, HasSubstr("not written within 2 s"));
    EXPECT_THAT(snapshot.body, HasSubstr("full or failing disk"));
    auto backup = HttpClient(n.server->port(), 60s).post("/raft/backup", "");
    EXPECT_EQ(backup.status, 504) << backup.body;
    EXPECT_EQ(backup.error_code(), "deadline_exceeded");
    EXPECT_EQ(n.app->status().failure, "") << "a snapshot that cannot be written stops nothing";

    disk->free_space();
    const std::uint64_t applied = n.app->status().applied_index;
    std::uint64_t covered = 0;
    EXPECT_TRUE(wait_for(
        [&] {
          auto r = HttpClient(n.server->port(), 60s).post("/raft/snapshot", "");
          if (r.status == 202) covered = r.json().value("index", std::uint64_t{0});
          return r.status == 202;
        },
        60s))
        << "no snapshot once space was back";
    EXPECT_GE(covered, applied) << "the snapshot misses entries applied before the request";
    // Commands are refused until libraft preallocated log space again (~5 s).
    EXPECT_TRUE(wait_for(
        [&] {
          auto late = n.app->send(bank::Open{.owner = "after"});
          if (late) acknowledged.push_back(late->id);
          return late.has_value();
        },
        60s));
    n.close();
  }
  Node n = Node::open(data, kRequestTimeout);
  ASSERT_TRUE(n.app);
  for (std::uint64_t id : acknowledged) {
    auto a = n.app->send(bank::GetAccount{.account = id}, {.consistency = catga::Consistency::linearizable});
    EXPECT_TRUE(a.has_value()) << "acknowledged account " << id << " lost: " << a.error();
  }
  n.close();
}

}  // namespace
}  // namespace catga::testing
