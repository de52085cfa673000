// catga-bench: drives a Catga cluster and prints one JSON object per scenario.
//
//   catga-bench --scenario command-leader --nodes 3 --callers 64 --seconds 10 [--payload 64]
//
// Scenarios:
//   command-leader      commands sent on the leader
//   command-follower    commands sent on a follower (forwarded to the leader)
//   query-local         local queries (in-process cost of a read)
//   query-linearizable  linearizable queries on the leader
//   failover            commands from every node while the leader is stopped
//                       and restarted, --kills times; reports the time from each
//                       stop to the next successful command, and checks that no
//                       acknowledged command is lost or applied twice
//
// The cluster runs in this process: N nodes, each with its own Raft loop
// thread, talking TCP over 127.0.0.1, with durable logs in a fresh temporary
// directory (removed afterwards). Each caller is a closed loop: it sends one
// request, waits for its result, sends the next. The first `--warmup` seconds
// are not measured.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "catga/application.hpp"
#include "catga/logging.hpp"
#include "support/cluster.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct BenchState {
  std::uint64_t commands = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, std::uint32_t> tagged;  // failover: tag → times applied
  MSGPACK_DEFINE_MAP(commands, bytes, tagged);
};

struct Put {
  using catga_message = catga::Command<std::uint64_t, "bench.put.v1">;
  std::string data;
  std::string tag;  // failover only
  MSGPACK_DEFINE_MAP(data, tag);
};

struct Count {
  using catga_message = catga::Query<std::uint64_t, "bench.count.v1">;
};

void register_bench(catga::ApplicationBuilder<BenchState>& b, std::size_t) {
  b.command<Put>([](BenchState& s, const Put& p) {
     s.bytes += p.data.size();
     if (!p.tag.empty()) s.tagged[p.tag]++;
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

double percentile(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]) / 1000.0;
}

struct Settings {
  std::string scenario;
  std::size_t nodes = 3, callers = 1, payload = 64, kills = 10;
  double seconds = 5, warmup = 1;
  int election_timeout_ms = 1000, heartbeat_ms = 100;
  unsigned max_in_flight = 0;  // 0: the library's default
};

void print(const Settings& s, std::uint64_t ops, double elapsed, std::vector<std::int64_t>& latencies,
           std::uint64_t errors, const std::string& extra = "") {
  std::printf(
      "{\"scenario\":\"%s\",\"mode\":\"in-process\",\"nodes\":%zu,\"callers\":%zu,\"payload\":%zu,"
      "\"ops\":%llu,\"ops_per_sec\":%.0f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"errors\":%llu,"
      "\"rss_mib\":%.1f%s}\n",
      s.scenario.c_str(), s.nodes, s.callers, s.payload, static_cast<unsigned long long>(ops),
      elapsed > 0 ? static_cast<double>(ops) / elapsed : 0.0, percentile(latencies, 0.50), percentile(latencies, 0.99),
      percentile(latencies, 0.999), static_cast<unsigned long long>(errors), rss_mib(), extra.c_str());
  std::fflush(stdout);
}

// A closed-loop caller driven by completions: each result sends the next request.
struct Loop {
  std::function<void(std::function<void(bool ok)>)> issue;  // sends one request
  std::atomic<bool>* measuring;
  std::atomic<bool>* stopping;
  std::vector<std::int64_t> latencies;
  std::uint64_t errors = 0;
  std::atomic<bool> done{false};

  void next() {
    if (stopping->load(std::memory_order_relaxed)) {
      done = true;
      return;
    }
    auto start = Clock::now();
    issue([this, start](bool ok) {
      if (!ok) ++errors;
      else if (measuring->load(std::memory_order_relaxed))
        latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
      next();
    });
  }
};

// Runs `callers` closed loops of `issue` for the measured window.
int run_loops(const Settings& s, const std::function<void(std::function<void(bool)>)>& issue) {
  std::atomic<bool> measuring{false}, stopping{false};
  std::vector<std::unique_ptr<Loop>> loops;
  for (std::size_t i = 0; i < s.callers; ++i) {
    auto l = std::make_unique<Loop>();
    l->issue = issue;
    l->measuring = &measuring;
    l->stopping = &stopping;
    loops.push_back(std::move(l));
  }
  for (auto& l : loops) l->next();
  std::this_thread::sleep_for(std::chrono::duration<double>(s.warmup));
  measuring = true;
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  stopping = true;
  testsupport::wait_for([&] { return std::all_of(loops.begin(), loops.end(), [](auto& l) { return l->done.load(); }); });
  std::vector<std::int64_t> all;
  std::uint64_t errors = 0;
  for (auto& l : loops) {
    all.insert(all.end(), l->latencies.begin(), l->latencies.end());
    errors += l->errors;
  }
  const auto ops = all.size();
  print(s, ops, elapsed, all, errors);
  return 0;
}

testsupport::LocalCluster<BenchState> make_cluster(const Settings& s) {
  return testsupport::LocalCluster<BenchState>(s.nodes, register_bench, [&](catga::ClusterOptions& o) {
    o.election_timeout = std::chrono::milliseconds(s.election_timeout_ms);
    o.heartbeat_interval = std::chrono::milliseconds(s.heartbeat_ms);
    if (s.max_in_flight) o.max_entries_in_flight = s.max_in_flight;
  });
}

int run_commands(const Settings& s, bool on_follower) {
  auto cluster = make_cluster(s);
  auto leader = cluster.leader();
  if (!leader) return std::fprintf(stderr, "catga-bench: no leader elected\n"), 1;
  const std::size_t target = on_follower ? (*leader + 1) % s.nodes : *leader;
  catga::Application& app = cluster.app(target);
  const std::string data(s.payload, 'x');
  return run_loops(s, [&](std::function<void(bool)> done) {
    app.send(Put{.data = data}, catga::CommandOptions{},
             [done = std::move(done)](catga::Result<std::uint64_t> r) { done(r.has_value()); });
  });
}

int run_query_linearizable(const Settings& s) {
  auto cluster = make_cluster(s);
  auto leader = cluster.leader();
  if (!leader) return std::fprintf(stderr, "catga-bench: no leader elected\n"), 1;
  catga::Application& app = cluster.app(*leader);
  const catga::QueryOptions linearizable{.consistency = catga::Consistency::linearizable};
  return run_loops(s, [&](std::function<void(bool)> done) {
    app.send(Count{}, linearizable, [done = std::move(done)](catga::Result<std::uint64_t> r) { done(r.has_value()); });
  });
}

// Local reads are too fast to time one by one: time batches of 1000.
int run_query_local(const Settings& s) {
  auto cluster = make_cluster(s);
  auto leader = cluster.leader();
  if (!leader) return std::fprintf(stderr, "catga-bench: no leader elected\n"), 1;
  catga::Application& app = cluster.app((*leader + 1) % s.nodes);
  std::atomic<bool> stop{false};
  std::vector<std::vector<std::int64_t>> per(s.callers);
  std::vector<std::thread> threads;
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.seconds));
  auto t0 = Clock::now();
  for (std::size_t c = 0; c < s.callers; ++c) {
    threads.emplace_back([&, c] {
      while (Clock::now() < end) {
        auto start = Clock::now();
        for (int i = 0; i < 1000; ++i) {
          auto r = app.send(Count{});
          if (!r) stop = true;
        }
        per[c].push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count() / 1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<std::int64_t> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  print(s, all.size() * 1000, elapsed, all, stop ? 1 : 0, ",\"note\":\"latency per query, averaged over batches of 1000\"");
  return 0;
}

int run_failover(Settings s) {
  s.election_timeout_ms = std::min(s.election_timeout_ms, 150);
  s.heartbeat_ms = std::min(s.heartbeat_ms, 50);
  auto cluster = make_cluster(s);
  if (!cluster.leader()) return std::fprintf(stderr, "catga-bench: no leader elected\n"), 1;
  std::mutex mu;
  std::set<std::string> acknowledged, failed;
  std::atomic<std::uint64_t> ok_count{0};
  std::atomic<std::int64_t> last_ok_ns{0};
  std::vector<std::unique_ptr<std::atomic<bool>>> stop;
  std::vector<std::thread> threads;
  std::vector<std::int64_t> latencies;
  std::mutex lat_mu;
  const std::string data(s.payload, 'x');
  std::vector<std::size_t> node_of(s.callers);
  auto start_caller = [&](std::size_t c, std::size_t node) {
    node_of[c] = node;
    *stop[c] = false;
    threads[c] = std::thread([&, c, node] {
      catga::Application& app = cluster.app(node);
      for (std::uint64_t i = 0; !*stop[c]; ++i) {
        std::string tag = "c" + std::to_string(c) + "-" + std::to_string(i) + "-" + std::to_string(Clock::now().time_since_epoch().count());
        auto t = Clock::now();
        auto r = app.send(Put{.data = data, .tag = tag}, {.timeout = std::chrono::seconds(10)});
        std::lock_guard lock(mu);
        if (r) {
          acknowledged.insert(tag);
          ok_count++;
          last_ok_ns = Clock::now().time_since_epoch().count();
          std::lock_guard l2(lat_mu);
          latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
        } else if (!r.error().outcome_unknown()) {
          failed.insert(tag);
        }
      }
    });
  };
  for (std::size_t c = 0; c < s.callers; ++c) {
    stop.push_back(std::make_unique<std::atomic<bool>>(false));
    threads.emplace_back();
    start_caller(c, c % s.nodes);
  }
  std::vector<std::int64_t> failover_ms;
  auto t0 = Clock::now();
  for (std::size_t k = 0; k < s.kills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto leader = cluster.leader();
    if (!leader) break;
    // The stopped node's callers stop with it (their Application goes away).
    for (std::size_t c = 0; c < s.callers; ++c)
      if (node_of[c] == *leader) {
        *stop[c] = true;
        threads[c].join();
      }
    const auto killed_at = Clock::now();
    const auto ok_before = ok_count.load();
    cluster.stop(*leader);
    testsupport::wait_for([&] { return ok_count.load() > ok_before + 0 && last_ok_ns.load() > killed_at.time_since_epoch().count(); });
    failover_ms.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(
                              Clock::duration(last_ok_ns.load()) - killed_at.time_since_epoch()).count());
    cluster.start(*leader);
    for (std::size_t c = 0; c < s.callers; ++c)
      if (node_of[c] == *leader) start_caller(c, *leader);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (std::size_t c = 0; c < s.callers; ++c) {
    *stop[c] = true;
    if (threads[c].joinable()) threads[c].join();
  }
  // Check every node against what callers were told.
  auto leader = cluster.leader();
  std::uint64_t lost = 0, duplicated = 0, failed_applied = 0;
  if (leader) {
    (void)cluster.app(*leader).send(Count{}, {.consistency = catga::Consistency::linearizable});
    cluster.wait_applied(cluster.app(*leader).status().commit_index);
    for (std::size_t i = 0; i < s.nodes; ++i) {
      auto& state = cluster.app(i).mediator().state();
      std::shared_lock lock(state.mutex());
      const auto& tagged = static_cast<catga::detail::StateCell<BenchState>&>(state).value.tagged;
      for (const auto& [tag, n] : tagged) duplicated += n > 1;
      for (const auto& tag : acknowledged) lost += tagged.count(tag) == 0;
      for (const auto& tag : failed) failed_applied += tagged.count(tag) != 0;
    }
  }
  std::vector<std::int64_t> sorted = failover_ms;
  std::sort(sorted.begin(), sorted.end());
  const double p50 = sorted.empty() ? 0 : static_cast<double>(sorted[sorted.size() / 2]);
  const double max = sorted.empty() ? 0 : static_cast<double>(sorted.back());
  char extra[256];
  std::snprintf(extra, sizeof extra,
                ",\"kills\":%zu,\"election_timeout_ms\":%d,\"failover_ms_p50\":%.0f,\"failover_ms_max\":%.0f,"
                "\"lost\":%llu,\"duplicated\":%llu,\"failed_but_applied\":%llu",
                failover_ms.size(), s.election_timeout_ms, p50, max, static_cast<unsigned long long>(lost),
                static_cast<unsigned long long>(duplicated), static_cast<unsigned long long>(failed_applied));
  print(s, acknowledged.size(), elapsed, latencies, failed.size(), extra);
  return lost + duplicated + failed_applied == 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"catga-bench: measure a Catga cluster"};
  Settings s;
  s.scenario = "command-leader";
  cli.add_option("--scenario", s.scenario, "what to measure")
      ->check(CLI::IsMember({"command-leader", "command-follower", "query-local", "query-linearizable", "failover"}));
  cli.add_option("--nodes", s.nodes, "cluster size")->check(CLI::Range(1, 7));
  cli.add_option("--callers", s.callers, "concurrent closed-loop callers")->check(CLI::Range(1, 4096));
  cli.add_option("--seconds", s.seconds, "measured duration")->check(CLI::PositiveNumber);
  cli.add_option("--warmup", s.warmup, "unmeasured warm-up before it")->check(CLI::NonNegativeNumber);
  cli.add_option("--payload", s.payload, "bytes of payload per command")->check(CLI::Range(0, 1 << 20));
  cli.add_option("--kills", s.kills, "failover: how many times the leader is stopped")->check(CLI::Range(1, 1000));
  cli.add_option("--election-timeout-ms", s.election_timeout_ms, "Raft election timeout (failover uses at most 150)");
  cli.add_option("--heartbeat-ms", s.heartbeat_ms, "Raft heartbeat interval (failover uses at most 50)");
  cli.add_option("--max-entries-in-flight", s.max_in_flight, "ClusterOptions::max_entries_in_flight (default: the library's)");
  CLI11_PARSE(cli, argc, argv);
  catga::set_log_level(catga::LogLevel::warn);
  if (s.scenario == "command-leader") return run_commands(s, false);
  if (s.scenario == "command-follower") return run_commands(s, true);
  if (s.scenario == "query-local") return run_query_local(s);
  if (s.scenario == "query-linearizable") return run_query_linearizable(s);
  return run_failover(s);
}
