// catga-bench: drives a Catga cluster and prints one JSON object per scenario.
//
//   catga-bench --scenario command-leader --nodes 3 --callers 64 --seconds 10 [--payload 64]
//
// The cluster runs in this process: N nodes, each with its own Raft loop
// thread, talking TCP over 127.0.0.1, with durable logs in a fresh temporary
// directory (removed afterwards). Each caller is a closed loop: it sends one
// command, waits for its result, sends the next. The first `--warmup`
// seconds are not measured.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include "catga/application.hpp"
#include "support/cluster.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct BenchState {
  std::uint64_t commands = 0;
  std::uint64_t bytes = 0;
  MSGPACK_DEFINE_MAP(commands, bytes);
};

struct Put {
  using catga_message = catga::Command<std::uint64_t, "bench.put.v1">;
  std::string data;
  MSGPACK_DEFINE_MAP(data);
};

struct Count {
  using catga_message = catga::Query<std::uint64_t, "bench.count.v1">;
};

void register_bench(catga::ApplicationBuilder<BenchState>& b, std::size_t) {
  b.command<Put>([](BenchState& s, const Put& p) {
     s.bytes += p.data.size();
     return ++s.commands;
   }).query<Count>([](const BenchState& s, const Count&) { return s.commands; });
}

double rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

struct Recorder {
  std::mutex mu;
  std::vector<std::int64_t> latencies_ns;
  std::atomic<std::uint64_t> errors{0};
  std::atomic<bool> measuring{false};
  std::atomic<bool> stopping{false};
};

// One closed-loop caller: each completion sends the next command.
struct Caller {
  catga::Application* app;
  Recorder* rec;
  std::string data;
  std::vector<std::int64_t> mine;
  std::atomic<bool> done{false};

  void next() {
    if (rec->stopping.load(std::memory_order_relaxed)) {
      done = true;
      return;
    }
    auto start = Clock::now();
    app->send(Put{.data = data}, catga::CommandOptions{}, [this, start](catga::Result<std::uint64_t> r) {
      if (!r) rec->errors++;
      else if (rec->measuring.load(std::memory_order_relaxed))
        mine.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
      next();
    });
  }
};

double percentile(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1000.0;
}

int run_command_leader(std::size_t nodes, std::size_t callers, double seconds, double warmup, std::size_t payload) {
  testsupport::LocalCluster<BenchState> cluster(nodes, register_bench, [](catga::ClusterOptions& o) {
    o.election_timeout = std::chrono::milliseconds(1000);
    o.heartbeat_interval = std::chrono::milliseconds(100);
  });
  auto leader = cluster.leader();
  if (!leader) {
    std::fprintf(stderr, "catga-bench: no leader elected\n");
    return 1;
  }
  catga::Application& app = cluster.app(*leader);
  Recorder rec;
  std::vector<std::unique_ptr<Caller>> loops;
  for (std::size_t i = 0; i < callers; ++i) {
    auto caller = std::make_unique<Caller>();
    caller->app = &app;
    caller->rec = &rec;
    caller->data.assign(payload, 'x');
    loops.push_back(std::move(caller));
  }
  for (auto& c : loops) c->next();
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  rec.measuring = true;
  auto before = app.send(Count{});
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  rec.measuring = false;
  auto elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  auto after = app.send(Count{});
  rec.stopping = true;
  testsupport::wait_for([&] {
    return std::all_of(loops.begin(), loops.end(), [](auto& c) { return c->done.load(); });
  });
  std::vector<std::int64_t> all;
  for (auto& c : loops) all.insert(all.end(), c->mine.begin(), c->mine.end());
  const auto ops = (after && before) ? *after - *before : all.size();
  std::printf(
      "{\"scenario\":\"command-leader\",\"mode\":\"in-process\",\"nodes\":%zu,\"callers\":%zu,\"payload\":%zu,"
      "\"ops\":%llu,\"ops_per_sec\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"errors\":%llu,"
      "\"rss_mib\":%.1f}\n",
      nodes, callers, payload, static_cast<unsigned long long>(ops), static_cast<double>(ops) / elapsed,
      percentile(all, 0.50), percentile(all, 0.99), percentile(all, 0.999),
      static_cast<unsigned long long>(rec.errors.load()), rss_mib());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"catga-bench: measure a Catga cluster"};
  std::string scenario = "command-leader";
  std::size_t nodes = 3, callers = 1, payload = 64;
  double seconds = 5, warmup = 1;
  cli.add_option("--scenario", scenario, "command-leader")->check(CLI::IsMember({"command-leader"}));
  cli.add_option("--nodes", nodes, "cluster size")->check(CLI::Range(1, 7));
  cli.add_option("--callers", callers, "concurrent closed-loop callers")->check(CLI::Range(1, 4096));
  cli.add_option("--seconds", seconds, "measured duration")->check(CLI::PositiveNumber);
  cli.add_option("--warmup", warmup, "unmeasured warm-up before it")->check(CLI::NonNegativeNumber);
  cli.add_option("--payload", payload, "bytes of payload per command")->check(CLI::Range(0, 1 << 20));
  CLI11_PARSE(cli, argc, argv);
  return run_command_leader(nodes, callers, seconds, warmup, payload);
}
