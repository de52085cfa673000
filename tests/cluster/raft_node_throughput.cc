// Raw throughput/latency of the Raft layer (a measurement, not a test; not in
// CTest): 3 RaftNodes in this process on 127.0.0.1, durable logs under
// $TMPDIR, 64-byte records.
//   1 caller:   one thread proposes, waits for the result, repeats.
//   N callers:  N closed-loop callers: each completion (on the loop thread)
//               immediately proposes that caller's next record.
// Usage: raft_node_throughput [seconds-per-phase=5] [callers=64] [record-bytes=64]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "catga/logging.hpp"

#include "cluster/raft_node.hpp"
#include "cluster_test_support.hpp"

using namespace catga;
using namespace catga::internal;
using namespace std::chrono;

namespace {

class CountingMachine : public RecordStateMachine {
 public:
  std::string apply(const ApplyInfo&, std::string_view) override {
    ++applied;
    return {};
  }
  std::string snapshot() override { return std::to_string(applied); }
  Result<void> restore(std::string_view) override { return ok(); }
  std::uint64_t applied = 0;
};

void report(const char* name, std::vector<std::int64_t>& lat_ns, double seconds, std::uint64_t errors) {
  std::sort(lat_ns.begin(), lat_ns.end());
  auto pct = [&](double p) {
    if (lat_ns.empty()) return 0.0;
    return lat_ns[std::min(lat_ns.size() - 1, static_cast<std::size_t>(p * lat_ns.size()))] / 1000.0;
  };
  std::printf("%-12s %9.0f ops/s  p50 %8.1f us  p99 %8.1f us  p99.9 %8.1f us  (%zu ops, %llu errors)\n", name,
              lat_ns.size() / seconds, pct(0.50), pct(0.99), pct(0.999), lat_ns.size(),
              static_cast<unsigned long long>(errors));
}

struct Caller {
  RaftNode* node = nullptr;
  std::string record;
  steady_clock::time_point deadline;
  std::vector<std::int64_t>* lat = nullptr;
  std::uint64_t* errors = nullptr;
  std::atomic<int>* running = nullptr;

  void go() {
    const auto start = steady_clock::now();
    if (start >= deadline) {
      running->fetch_sub(1);
      return;
    }
    node->propose(record, [this, start](Result<Applied> r) {
      lat->push_back(duration_cast<nanoseconds>(steady_clock::now() - start).count());
      if (!r) ++*errors;
      go();
    });
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 5;
  const int callers = argc > 2 ? std::atoi(argv[2]) : 64;
  catga::set_log_level(catga::LogLevel::warn);

  std::vector<Member> members;
  std::vector<std::unique_ptr<testing::TempDir>> dirs;
  for (std::uint64_t i = 1; i <= 3; ++i) {
    members.push_back({i, "127.0.0.1:" + std::to_string(testing::free_port())});
    dirs.push_back(std::make_unique<testing::TempDir>());
  }
  std::vector<std::unique_ptr<CountingMachine>> machines;
  std::vector<std::unique_ptr<RaftNode>> nodes;
  for (unsigned i = 0; i < 3; ++i) {
    ClusterOptions o;
    o.node_id = i + 1;
    o.members = members;
    o.data_dir = dirs[i]->path();
    machines.push_back(std::make_unique<CountingMachine>());
    auto n = RaftNode::start(o, *machines.back());
    if (!n) {
      std::fprintf(stderr, "start failed: %s\n", n.error().message().c_str());
      return 1;
    }
    nodes.push_back(std::move(*n));
  }
  RaftNode* leader = nullptr;
  testing::wait_until([&] {
    for (auto& n : nodes)
      if (n->status().ready) leader = n.get();
    return leader != nullptr;
  });
  if (leader == nullptr) {
    std::fprintf(stderr, "no leader\n");
    return 1;
  }
  const std::string record(argc > 3 ? std::atoi(argv[3]) : 64, 'r');
  std::printf("3 nodes, 1 process, 127.0.0.1, durable logs in %s, 64-byte records, %d s per phase\n",
              dirs[0]->path().parent_path().c_str(), seconds);

  {  // 1 caller, its own thread, waits for each result.
    std::vector<std::int64_t> lat;
    std::uint64_t errors = 0;
    const auto deadline = steady_clock::now() + std::chrono::seconds(seconds);
    const auto t0 = steady_clock::now();
    while (steady_clock::now() < deadline) {
      std::promise<bool> p;
      const auto start = steady_clock::now();
      leader->propose(record, [&p](Result<Applied> r) { p.set_value(r.has_value()); });
      if (!p.get_future().get()) ++errors;
      lat.push_back(duration_cast<nanoseconds>(steady_clock::now() - start).count());
    }
    report("1 caller", lat, duration<double>(steady_clock::now() - t0).count(), errors);
  }

  {  // N closed-loop callers.
    std::vector<std::int64_t> lat;  // touched on the loop thread only
    std::uint64_t errors = 0;
    std::atomic<int> running{callers};
    std::vector<Caller> cs(callers);
    const auto t0 = steady_clock::now();
    const auto deadline = t0 + std::chrono::seconds(seconds);
    for (auto& c : cs) c = Caller{leader, record, deadline, &lat, &errors, &running};
    for (auto& c : cs) {
      leader->post([&c] { c.go(); });
    }
    testing::wait_until([&] { return running.load() == 0; }, std::chrono::seconds(seconds + 60));
    const double secs = duration<double>(steady_clock::now() - t0).count();
    std::promise<void> fence;  // read `lat` on the loop thread's terms
    leader->post([&] { fence.set_value(); });
    fence.get_future().get();
    char name[32];
    std::snprintf(name, sizeof name, "%d callers", callers);
    report(name, lat, secs, errors);
  }
  nodes.clear();
  return 0;
}
