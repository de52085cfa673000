// catga-bench: drives a Catga cluster and prints one JSON object per scenario.
//
//   catga-bench --scenario command-leader --nodes 3 --callers 64 --seconds 10 [--payload 64]
//               [--mode in-process|multi-process]
//
// Scenarios:
//   command-leader      commands sent on the leader
//   command-follower    commands sent on a follower (forwarded to the leader)
//   query-local         local queries (in-process cost of a read)
//   query-linearizable  linearizable queries on the leader
//   query-linearizable-follower
//                       linearizable queries on a follower (read index from
//                       the leader, then wait until the follower applied it)
//   query-read-your-writes
//                       on a follower: a command, then a read_your_writes
//                       query at its index (latency of the pair)
//   query-linearizable-blocking, query-linearizable-follower-blocking,
//   query-read-your-writes-blocking
//                       the same three through the blocking send: a thread
//                       per caller, whose read runs its query on that thread
//                       once woken (the forms above complete callbacks, on
//                       the node's read threads)
//   failover            commands from every node while the leader is stopped
//                       and restarted, --kills times; reports the time from each
//                       stop to the next successful command, and checks that no
//                       acknowledged command is lost or applied twice
//                       (failover.hpp)
//   restore             multi-process, with --preload N: a follower that was
//                       down while the leader snapshotted N objects catches up
//                       (a snapshot install when the log behind the snapshot
//                       is shorter than what it lacks: --snapshot-trailing 1),
//                       then the leader restarts from its own snapshot; the
//                       time and peak RSS of each
//
// Modes:
//   in-process     (default) the N nodes run in this process, each with its own
//                  Raft loop thread
//   multi-process  each node is a child process of this one (multi_process.hpp);
//                  the load runs inside the target node's process
//
// Either way nodes talk TCP over 127.0.0.1 and keep durable logs in a fresh
// temporary directory (removed afterwards). Each caller is a closed loop: it
// sends one request, waits for its result, sends the next. The first
// `--warmup` seconds are not measured.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>

#include "bench.hpp"
#include "catga/logging.hpp"
#include "failover.hpp"
#include "multi_process.hpp"
#include "support/cluster.hpp"

namespace {

using namespace bench;

testsupport::LocalCluster<BenchState> make_cluster(const Settings& s) {
  return testsupport::LocalCluster<BenchState>(s.nodes, register_bench, [&](catga::ClusterOptions& o) { tune(s, o); });
}

// Restarts a follower of a large state: the time from start until it has
// applied what the leader had committed (its snapshot loaded, the log after it
// replayed, anything newer received), and the process's RSS then.
std::string restart_follower(testsupport::LocalCluster<BenchState>& cluster, std::size_t leader) {
  const std::size_t f = (leader + 1) % cluster.size();
  cluster.stop(f);
  const std::uint64_t commit = cluster.app(leader).status().commit_index;
  const auto t0 = Clock::now();
  cluster.start(f);
  const bool caught_up = testsupport::wait_for([&] { return cluster.app(f).status().applied_index >= commit; },
                                               std::chrono::minutes(10));
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  char buf[160];
  std::snprintf(buf, sizeof buf, ",\"follower_restart_ms\":%.0f,\"follower_caught_up\":%s,\"rss_mib_after_restart\":%.1f",
                ms, caught_up ? "true" : "false", rss_mib());
  return buf;
}

int run_in_process(const Settings& s) {
  auto cluster = make_cluster(s);
  auto leader = cluster.leader();
  if (!leader) return std::fprintf(stderr, "catga-bench: no leader elected\n"), 1;
  const auto m = measure(s, cluster.app(target_node(s, *leader)));
  std::string extra;
  if (s.preload > 0 && s.nodes > 1) extra = restart_follower(cluster, *leader);
  std::printf("%s\n", to_json(s, m, extra).c_str());
  return 0;
}

// Failover in this process: stopping a node destroys its Application, so its
// callers stop first.
class InProcessFailover : public FailoverCluster {
 public:
  explicit InProcessFailover(const Settings& s) : s_(s), cluster_(make_cluster(s)), callers_(s.nodes) {}

  std::size_t size() const override { return cluster_.size(); }
  std::optional<std::size_t> leader() override { return cluster_.leader(); }
  void kill(std::size_t i) override {
    callers_[i].reset();
    cluster_.stop(i);
  }
  void restart(std::size_t i) override { cluster_.start(i); }
  void start_callers(std::size_t i, std::size_t count, const std::string& tag_prefix,
                     const std::filesystem::path& log) override {
    callers_[i] = std::make_unique<FailoverCallers>(cluster_.app(i), s_, count, tag_prefix, log);
  }
  void stop_callers(std::size_t i) override { callers_[i].reset(); }
  void arm(std::size_t i, std::int64_t since_ns) override {
    if (callers_[i]) callers_[i]->arm(since_ns);
  }
  std::int64_t first_success(std::size_t i) override { return callers_[i] ? callers_[i]->first_success() : 0; }
  std::uint64_t applied_index(std::size_t i) override { return cluster_.app(i).status().applied_index; }
  Verdict verify(std::size_t i, std::uint64_t index, const std::filesystem::path& logs) override {
    testsupport::wait_for([&] { return applied_index(i) >= index; });
    return bench::verify(cluster_.app(i), logs);
  }

 private:
  const Settings& s_;
  testsupport::LocalCluster<BenchState> cluster_;
  std::vector<std::unique_ptr<FailoverCallers>> callers_;  // destroyed before the cluster
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"catga-bench: measure a Catga cluster"};
  Settings s;
  std::string samples;
  std::size_t serve_node = 0;
  NodePlacement where;
  cli.add_option("--scenario", s.scenario, "what to measure")
      ->check(CLI::IsMember({"command-leader", "command-follower", "query-local", "query-linearizable",
                             "query-linearizable-follower", "query-read-your-writes", "query-linearizable-blocking",
                             "query-linearizable-follower-blocking", "query-read-your-writes-blocking", "failover",
                             "restore"}));
  cli.add_option("--mode", s.mode, "in-process: every node in this process; multi-process: a process per node")
      ->check(CLI::IsMember({"in-process", "multi-process"}));
  cli.add_option("--nodes", s.nodes, "cluster size")->check(CLI::Range(1, 7));
  cli.add_option("--callers", s.callers, "concurrent closed-loop callers")->check(CLI::Range(1, 4096));
  cli.add_option("--seconds", s.seconds, "measured duration")->check(CLI::PositiveNumber);
  cli.add_option("--warmup", s.warmup, "unmeasured warm-up before it")->check(CLI::NonNegativeNumber);
  cli.add_option("--payload", s.payload, "bytes of payload per command")->check(CLI::Range(0, 1 << 20));
  cli.add_option("--kills", s.kills, "failover: how many times the leader is stopped")->check(CLI::Range(1, 1000));
  cli.add_option("--election-timeout-ms", s.election_timeout_ms, "Raft election timeout (failover uses at most 150)");
  cli.add_option("--heartbeat-ms", s.heartbeat_ms, "Raft heartbeat interval (failover uses at most 50)");
  cli.add_option("--max-entries-in-flight", s.max_in_flight,
                 "ClusterOptions::max_entries_in_flight (default: the library's)");
  cli.add_option("--snapshot-threshold", s.snapshot_threshold, "ClusterOptions::snapshot_threshold")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cli.add_option("--snapshot-trailing", s.snapshot_trailing, "ClusterOptions::snapshot_trailing")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cli.add_option("--snapshot-threshold-bytes", s.snapshot_threshold_bytes,
                 "ClusterOptions::snapshot_threshold_bytes (at least 1 MiB)")
      ->capture_default_str();
  cli.add_option("--snapshot-trailing-bytes", s.snapshot_trailing_bytes,
                 "ClusterOptions::snapshot_trailing_bytes (at most --snapshot-threshold-bytes)")
      ->capture_default_str();
  cli.add_option("--snapshot-growth-percent", s.snapshot_growth_percent, "ClusterOptions::snapshot_growth_percent");
  cli.add_flag("!--snapshot-inline", s.snapshot_in_child,
               "encode snapshots on the loop thread (ClusterOptions::snapshot_in_child = false)");
  cli.add_option("--preload", s.preload,
                 "objects put into every node's state (through the log, 100,000 a command) before the measurement");
  cli.add_flag("--grow", s.grow, "every measured command adds an object to the state");
  cli.add_option("--peer-secret", s.peer_secret,
                 "ClusterOptions::peer_secret: authenticated Raft and peer connections (default: none, insecure mode)");
  bool tls = false;
  cli.add_flag("--tls", tls,
               "mutual TLS 1.3 on the Raft and peer ports (ClusterOptions::tls_*_file), with a throwaway CA and "
               "certificates generated for the run");
  cli.add_option("--tls-dir", s.tls_dir)->group("");
  cli.add_option("--restore-leader-limit-mib", s.restore_leader_limit_mib,
                 "restore: abandon the snapshot install once the leader's RSS passes this")
      ->capture_default_str();
  cli.add_option("--data-roots", s.data_roots,
                 "multi-process: one directory per node (e.g. a disk each), node i's data directory is node<i> "
                 "under the i-th; default: a temporary directory")
      ->delimiter(',');
  cli.add_option("--samples", samples,
                 "multi-process: write each node's RSS and data directory size to this CSV about once a second");
  // The parent's options to a multi-process child (multi_process.hpp).
  cli.add_option("--serve-node", serve_node)->group("")->check(CLI::Range(1, 7));
  cli.add_option("--raft-ports", where.raft_ports)->group("")->delimiter(',');
  cli.add_option("--peer-ports", where.peer_ports)->group("")->delimiter(',');
  cli.add_option("--data-dir", where.data_dir)->group("");
  CLI11_PARSE(cli, argc, argv);
  catga::set_log_level(catga::LogLevel::warn);
  if (s.scenario == "failover") {
    s.election_timeout_ms = std::min(s.election_timeout_ms, 150);
    s.heartbeat_ms = std::min(s.heartbeat_ms, 50);
  }
  if (serve_node) {
    where.index = serve_node - 1;
    if (serve_node > s.nodes || where.raft_ports.size() != s.nodes || where.peer_ports.size() != s.nodes ||
        where.data_dir.empty())
      return std::fprintf(stderr, "catga-bench: --serve-node needs --raft-ports, --peer-ports and --data-dir\n"), 2;
    return bench::serve_node(s, where);
  }
  if (s.scenario == "restore" && (s.mode != "multi-process" || s.preload == 0 || s.nodes < 3))
    return std::fprintf(stderr, "catga-bench: restore needs --mode multi-process, --preload N and 3 or more nodes\n"), 2;
  if (!s.data_roots.empty() && (s.mode != "multi-process" || s.data_roots.size() != s.nodes))
    return std::fprintf(stderr, "catga-bench: --data-roots needs --mode multi-process and one directory per node\n"), 2;
  if (!samples.empty() && (s.mode != "multi-process" || s.scenario == "failover" || s.scenario == "restore"))
    return std::fprintf(stderr, "catga-bench: --samples needs --mode multi-process and a load scenario\n"), 2;
  std::optional<testsupport::TempDir> tls_dir;  // removed when the run ends
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (tls && s.tls_dir.empty()) {
      tls_dir.emplace();
      write_throwaway_tls(tls_dir->path(), s.nodes);
      s.tls_dir = tls_dir->path().string();
      args.insert(args.end(), {"--tls-dir", s.tls_dir});  // every node process uses the same files
    }
    if (s.mode == "multi-process") return run_multi_process(s, args, samples);
    if (s.scenario != "failover") return run_in_process(s);
    InProcessFailover cluster(s);
    return run_failover(s, cluster);
  } catch (const std::exception& e) {
    return std::fprintf(stderr, "catga-bench: %s\n", e.what()), 1;
  }
}
