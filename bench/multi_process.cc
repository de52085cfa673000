#include "multi_process.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "failover.hpp"
#include "node_process.hpp"
#include "support/cluster.hpp"

namespace bench {

namespace {

using namespace std::chrono_literals;

// Bytes allocated on disk for the files under `dir`, in MiB (like du).
double disk_mib(const std::filesystem::path& dir) {
  std::uint64_t bytes = 0;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      bytes += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

// N `--serve-node` children on 127.0.0.1, with durable data directories in a
// fresh temporary directory (removed afterwards).
class ProcessCluster {
 public:
  // `roots`: one directory per node to hold its data directory (empty: a
  // temporary directory for all). A data directory left there by an earlier
  // run is removed first, and the ones made here when the cluster goes.
  ProcessCluster(std::size_t n, std::vector<std::string> args, std::vector<std::string> roots = {})
      : args_(std::move(args)), roots_(std::move(roots)), nodes_(n) {
    for (std::size_t i = 0; i < roots_.size(); ++i) std::filesystem::remove_all(data_dir(i));
    std::set<int> used;
    auto fresh_port = [&] {
      int port;
      do port = testsupport::free_port();
      while (!used.insert(port).second);
      return port;
    };
    for (std::size_t i = 0; i < n; ++i) {
      raft_ports_.push_back(fresh_port());
      peer_ports_.push_back(fresh_port());
    }
    for (std::size_t i = 0; i < n; ++i) start(i);
  }
  ~ProcessCluster() {
    for (auto& node : nodes_)
      if (node) node->stop(10s);
    std::error_code ignored;
    for (std::size_t i = 0; i < roots_.size(); ++i) std::filesystem::remove_all(data_dir(i), ignored);
  }

  std::size_t size() const { return nodes_.size(); }
  NodeProcess& node(std::size_t i) { return *nodes_[i]; }
  std::filesystem::path data_dir(std::size_t i) const {
    const std::filesystem::path root = i < roots_.size() ? std::filesystem::path(roots_[i]) : dir_.path();
    return root / ("node" + std::to_string(i + 1));
  }

  void start(std::size_t i) {
    auto args = args_;
    auto ports = [](const std::vector<int>& ports) {
      std::string out;
      for (int p : ports) out += (out.empty() ? "" : ",") + std::to_string(p);
      return out;
    };
    args.insert(args.end(), {"--serve-node", std::to_string(i + 1), "--raft-ports", ports(raft_ports_), "--peer-ports",
                             ports(peer_ports_), "--data-dir", data_dir(i).string()});
    nodes_[i] = std::make_unique<NodeProcess>(args);
  }

  // The index of a node that reports itself a ready leader, once there is one.
  std::optional<std::size_t> leader(std::chrono::milliseconds limit = 30s) {
    std::optional<std::size_t> found;
    testsupport::wait_for(
        [&] {
          for (std::size_t i = 0; i < nodes_.size(); ++i) {
            if (!nodes_[i]->running() || !nodes_[i]->send("status")) continue;
            auto reply = nodes_[i]->read_line(5s);
            if (reply && reply->rfind("leader 1 ", 0) == 0) {
              found = i;
              return true;
            }
          }
          std::this_thread::sleep_for(10ms);
          return false;
        },
        limit);
    return found;
  }

  // Sends `request`, returns the one-line reply; throws if there is none in `limit`.
  std::string ask(std::size_t i, const std::string& request, std::chrono::milliseconds limit = 30s) {
    std::optional<std::string> reply;
    if (nodes_[i]->send(request)) reply = nodes_[i]->read_line(limit);
    if (!reply || reply->rfind("error", 0) == 0)
      throw std::runtime_error("node " + std::to_string(i + 1) + ": no answer to '" + request + "'" +
                               (reply ? ": " + *reply : ""));
    return *reply;
  }

  std::vector<double> rss_mib() const {
    std::vector<double> out;
    for (auto& node : nodes_) out.push_back(node->running() ? bench::rss_mib(std::to_string(node->pid())) : 0.0);
    return out;
  }
  std::vector<double> disk_mib() const {
    std::vector<double> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) out.push_back(bench::disk_mib(data_dir(i)));
    return out;
  }

 private:
  testsupport::TempDir dir_;
  std::vector<std::string> args_;
  std::vector<std::string> roots_;
  std::vector<int> raft_ports_, peer_ports_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
};

// One CSV row per progress line: seconds since the load started, requests
// completed, each node's RSS and data directory size in MiB, then what the
// target node reported (progress_columns).
class Samples {
 public:
  static constexpr const char* progress_columns =
      "p99_us,p99_minute_us,snapshots,snapshot_pause_ms,snapshot_pause_max_ms,leader_changes";
  Samples(const std::string& path, std::size_t nodes) : out_(path) {
    if (!out_) throw std::runtime_error("cannot write " + path);
    out_ << "seconds,ops";
    for (std::size_t i = 1; i <= nodes; ++i) out_ << ",rss_mib_" << i;
    for (std::size_t i = 1; i <= nodes; ++i) out_ << ",disk_mib_" << i;
    out_ << "," << progress_columns << "\n";
  }
  // `progress`: the fields of a progress line after "progress " (ops first).
  void add(ProcessCluster& cluster, const std::string& progress) {
    const double t = std::chrono::duration<double>(Clock::now() - start_).count();
    const auto rss = cluster.rss_mib(), disk = cluster.disk_mib();
    std::istringstream fields(progress);
    std::uint64_t ops = 0;
    fields >> ops;
    std::string rest, field;
    while (fields >> field) rest += "," + field;
    char head[64];
    std::snprintf(head, sizeof head, "%.1f,%llu,", t, static_cast<unsigned long long>(ops));
    out_ << head << join(rss, ",") << "," << join(disk, ",") << rest << std::endl;
    if (++rows_ % 10 == 0)
      std::fprintf(stderr, "catga-bench: %.0f s, %llu ops, RSS MiB %s, disk MiB %s\n", t,
                   static_cast<unsigned long long>(ops), join(rss, " ").c_str(), join(disk, " ").c_str());
  }

 private:
  std::ofstream out_;
  Clock::time_point start_ = Clock::now();
  std::uint64_t rows_ = 0;
};

// Failover with a process per node: the leader is SIGKILLed, its callers with it.
class ProcessFailover : public FailoverCluster {
 public:
  explicit ProcessFailover(ProcessCluster& cluster) : cluster_(cluster) {}

  std::size_t size() const override { return cluster_.size(); }
  std::optional<std::size_t> leader() override { return cluster_.leader(); }
  void kill(std::size_t i) override { cluster_.node(i).kill(); }
  void restart(std::size_t i) override { cluster_.start(i); }
  void start_callers(std::size_t i, std::size_t count, const std::string& tag_prefix,
                     const std::filesystem::path& log) override {
    cluster_.ask(i, "callers " + std::to_string(count) + " " + tag_prefix + " " + log.string());
  }
  void stop_callers(std::size_t i) override { cluster_.ask(i, "stop-callers"); }
  void arm(std::size_t i, std::int64_t since_ns) override { cluster_.ask(i, "arm " + std::to_string(since_ns)); }
  std::int64_t first_success(std::size_t i) override { return std::stoll(cluster_.ask(i, "first")); }
  std::uint64_t applied_index(std::size_t i) override {
    std::istringstream status(cluster_.ask(i, "status"));
    std::string role, ready;
    std::uint64_t index = 0;
    status >> role >> ready >> index;
    return index;
  }
  Verdict verify(std::size_t i, std::uint64_t index, const std::filesystem::path& logs) override {
    std::istringstream reply(cluster_.ask(i, "verify " + std::to_string(index) + " " + logs.string(), 60s));
    Verdict v;
    reply >> v.lost >> v.duplicated >> v.failed_but_applied;
    return v;
  }
  std::vector<double> rss_mib_nodes() override { return cluster_.rss_mib(); }

 private:
  ProcessCluster& cluster_;
};

// The rest of a request line after the fields read so far (a path may hold spaces).
std::string rest_of(std::istringstream& request) {
  std::string rest;
  std::getline(request >> std::ws, rest);
  return rest;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "catga-bench: %s\n", message.c_str());
  return 1;
}

// A node's answer to "status".
struct NodeReport {
  std::string role;
  int ready = 0;
  std::uint64_t applied = 0, commit = 0, snapshot_index = 0, snapshots_installed = 0, snapshot_bytes = 0;
  std::uint64_t snapshots_sent = 0, snapshot_sends_skipped = 0;
};

NodeReport report(ProcessCluster& cluster, std::size_t i, std::chrono::milliseconds limit = 30s) {
  std::istringstream in(cluster.ask(i, "status", limit));
  NodeReport r;
  in >> r.role >> r.ready >> r.applied >> r.commit >> r.snapshot_index >> r.snapshots_installed >> r.snapshot_bytes >>
      r.snapshots_sent >> r.snapshot_sends_skipped;
  return r;
}

// Starts node i again; the milliseconds until it has applied `restored` (its
// snapshot loaded or installed) and until it has applied `index` (caught up),
// or until `give_up` said so (caught_up_ms stays 0).
struct StartTimes {
  double restored_ms = 0, caught_up_ms = 0;
  bool gave_up = false;
};
StartTimes start_until_applied(ProcessCluster& cluster, std::size_t i, std::uint64_t restored, std::uint64_t index,
                               const std::function<bool()>& give_up = {}) {
  const auto t0 = Clock::now();
  auto since = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
  cluster.start(i);
  StartTimes t;
  // The first answer comes once the node is built (its own snapshot loaded).
  for (std::uint64_t applied = 0; applied < index;) {
    if (Clock::now() - t0 > 20min)
      throw std::runtime_error("node " + std::to_string(i + 1) + " did not catch up in 20 min");
    if (give_up && give_up()) {
      t.gave_up = true;
      return t;
    }
    applied = report(cluster, i, 20min).applied;
    if (applied >= restored && t.restored_ms == 0) t.restored_ms = since();
    if (applied < index) std::this_thread::sleep_for(2ms);
  }
  t.caught_up_ms = since();
  return t;
}

// --scenario restore: with --preload objects, one process per node, the two
// times of issue 12 item 3. A follower is stopped; the leader puts the objects
// in and snapshots them (keeping --snapshot-trailing entries of log behind the
// snapshot); the follower starts again and catches up — through a snapshot
// install when the entries it lacks are gone from the leader's log; then the
// leader is stopped and started again from its own snapshot. Each time runs
// from the process's start to the node having applied the snapshot's index
// (restored) and everything the cluster had applied (caught up: for the
// restarted leader that includes the others electing a new leader); the peak
// RSS (VmHWM) is that process's, over its life.
int run_restore(const Settings& s, ProcessCluster& cluster) {
  const auto leader = cluster.leader();
  if (!leader) return fail("no leader elected");
  const std::size_t l = *leader, f = (l + 1) % cluster.size();
  cluster.node(f).stop(60s);
  std::istringstream preloaded(cluster.ask(l, "preload", 60min));
  double preload_seconds = 0;
  std::uint64_t snapshot_index = 0;
  int written = 0;
  preloaded >> preload_seconds >> snapshot_index >> written;
  if (!written) return fail("the leader's snapshot after the preload was not written");
  // libraft's transport keeps the last 3 messages for an unreachable peer and
  // delivers them when it comes back: entries sent before the snapshot would
  // reach the follower that way. Heartbeats meanwhile push them out.
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max(5000, 20 * s.heartbeat_ms)));
  const NodeReport before = report(cluster, l);
  const double leader_rss = rss_mib(std::to_string(cluster.node(l).pid()));

  // The leader reads and sends the snapshot meanwhile, and libraft may send it
  // many times over (docs/performance.md): past --restore-leader-limit-mib of
  // leader RSS the install is abandoned (the follower is killed) so that the
  // run does not take the machine's memory.
  const std::string lpid_before = std::to_string(cluster.node(l).pid());
  const auto leader_too_big = [&] { return rss_mib(lpid_before) > static_cast<double>(s.restore_leader_limit_mib); };
  const StartTimes install = start_until_applied(cluster, f, before.snapshot_index, before.applied, leader_too_big);
  const std::string fpid = std::to_string(cluster.node(f).pid());
  const double install_rss = rss_mib(fpid), install_peak = rss_mib(fpid, "VmHWM:");
  const double leader_rss_after = rss_mib(lpid_before), leader_peak = rss_mib(lpid_before, "VmHWM:");
  NodeReport follower;
  if (install.gave_up) cluster.node(f).kill();
  else follower = report(cluster, f);
  const NodeReport sender = report(cluster, l);  // its snapshot sends, before it stops
  cluster.node(l).stop(120s);
  const StartTimes restart = start_until_applied(cluster, l, before.snapshot_index, before.applied);
  const NodeReport restarted = report(cluster, l);
  const std::string lpid = std::to_string(cluster.node(l).pid());
  const double restart_rss = rss_mib(lpid), restart_peak = rss_mib(lpid, "VmHWM:");

  std::printf(
      "{\"scenario\":\"restore\",\"mode\":\"multi-process\",\"nodes\":%zu,\"preload\":%llu,"
      "\"preload_seconds\":%.1f,\"snapshot_index\":%llu,\"snapshot_mib\":%.1f,\"snapshot_trailing\":%llu,"
      "\"leader_rss_mib\":%.1f,\"leader_rss_mib_after_install\":%.1f,\"leader_peak_rss_mib\":%.1f,\"install_ms\":%.0f,\"install_caught_up_ms\":%.0f,"
      "\"install_abandoned\":%s,\"install_snapshots_installed\":%llu,\"leader_snapshots_sent\":%llu,\"leader_snapshot_sends_skipped\":%llu,\"install_rss_mib\":%.1f,\"install_peak_rss_mib\":%.1f,"
      "\"restart_ms\":%.0f,\"restart_caught_up_ms\":%.0f,"
      "\"restart_snapshots_installed\":%llu,\"restart_rss_mib\":%.1f,\"restart_peak_rss_mib\":%.1f}\n",
      s.nodes, static_cast<unsigned long long>(s.preload), preload_seconds,
      static_cast<unsigned long long>(before.snapshot_index), static_cast<double>(before.snapshot_bytes) / (1 << 20),
      static_cast<unsigned long long>(s.snapshot_trailing), leader_rss, leader_rss_after, leader_peak, install.restored_ms, install.caught_up_ms,
      install.gave_up ? "true" : "false", static_cast<unsigned long long>(follower.snapshots_installed),
      static_cast<unsigned long long>(sender.snapshots_sent), static_cast<unsigned long long>(sender.snapshot_sends_skipped), install_rss, install_peak, restart.restored_ms,
      restart.caught_up_ms,
      static_cast<unsigned long long>(restarted.snapshots_installed), restart_rss, restart_peak);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int serve_node(const Settings& s, const NodePlacement& where) {
  catga::ClusterOptions o;
  o.node_id = where.index + 1;
  for (std::size_t i = 0; i < where.raft_ports.size(); ++i)
    o.members.push_back(catga::Member{i + 1, "127.0.0.1:" + std::to_string(where.raft_ports[i]),
                                      catga::MemberRole::voter, "127.0.0.1:" + std::to_string(where.peer_ports[i])});
  o.data_dir = where.data_dir;
  tune(s, o);
  catga::ApplicationBuilder<BenchState> builder;
  register_bench(builder, where.index);
  auto built = builder.cluster(o).build();
  if (!built) return fail("node " + std::to_string(o.node_id) + ": " + built.error().to_string());
  catga::Application& app = **built;
  std::unique_ptr<FailoverCallers> callers;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream request(line);
    std::string verb, prefix;
    request >> verb;
    std::string reply = "ok";
    try {
      if (verb == "status") {
        const auto st = app.status();
        reply = std::string(catga::to_string(st.role)) + (st.ready ? " 1 " : " 0 ") + std::to_string(st.applied_index) +
                " " + std::to_string(st.commit_index) + " " + std::to_string(st.last_snapshot_index) + " " +
                std::to_string(st.counters.snapshots_installed) + " " + std::to_string(st.counters.snapshot_bytes) +
                " " + std::to_string(st.counters.snapshots_sent) + " " + std::to_string(st.counters.snapshot_sends_skipped);
      } else if (verb == "preload") {
        Preloaded p = preload(s, app);
        // A snapshot already under way (one fell due during the preload)
        // refuses another: ask again until one covers everything.
        for (int attempt = 0; p.snapshot_index == 0 && attempt < 600; ++attempt) {
          std::this_thread::sleep_for(std::chrono::seconds(1));
          auto again = app.take_snapshot();
          if (again) p.snapshot_index = *again;
          else if (attempt % 30 == 0) std::fprintf(stderr, "catga-bench: snapshot: %s\n", again.error().message().c_str());
        }
        // The snapshot file is written after take_snapshot answered: wait for it.
        const bool written =
            p.snapshot_index > 0 &&
            testsupport::wait_for([&] { return app.status().last_snapshot_index >= p.snapshot_index; },
                                  std::chrono::minutes(10));
        char buf[96];
        std::snprintf(buf, sizeof buf, "%.3f %llu %d", p.seconds, static_cast<unsigned long long>(p.snapshot_index),
                      written ? 1 : 0);
        reply = buf;
      } else if (verb == "run") {
        LatencyHistogram minute;  // since the start of the current minute of the run
        std::uint64_t ticks = 0;
        const auto m = measure(s, app, [&](const Progress& p) {
          if (ticks++ % 60 == 0) minute = {};
          minute.merge(p.latest);
          const auto c = app.status().counters;
          std::printf("progress %llu %.0f %.0f %llu %.2f %.2f %llu\n", static_cast<unsigned long long>(p.completed),
                      p.latest.percentile_us(0.99), minute.percentile_us(0.99),
                      static_cast<unsigned long long>(c.snapshots_taken),
                      static_cast<double>(c.snapshot_pause.count()) / 1000.0,
                      static_cast<double>(c.snapshot_pause_max.count()) / 1000.0,
                      static_cast<unsigned long long>(c.leader_changes));
          std::fflush(stdout);
        });
        reply = to_json(s, m);
      } else if (std::size_t count = 0; verb == "callers" && request >> count >> prefix) {
        callers = std::make_unique<FailoverCallers>(app, s, count, prefix, rest_of(request));
      } else if (verb == "stop-callers") {
        callers.reset();
      } else if (std::int64_t since_ns = 0; verb == "arm" && request >> since_ns) {
        if (callers) callers->arm(since_ns);
      } else if (verb == "first") {
        reply = std::to_string(callers ? callers->first_success() : 0);
      } else if (std::uint64_t index = 0; verb == "verify" && request >> index) {
        const std::filesystem::path logs = rest_of(request);
        testsupport::wait_for([&] { return app.status().applied_index >= index; });
        const Verdict v = verify(app, logs);
        reply =
            std::to_string(v.lost) + " " + std::to_string(v.duplicated) + " " + std::to_string(v.failed_but_applied);
      } else {
        reply = "error: unknown request '" + line + "'";
      }
    } catch (const std::exception& e) {
      reply = std::string("error: ") + e.what();
    }
    std::printf("%s\n", reply.c_str());
    std::fflush(stdout);
  }
  return 0;
}

int run_multi_process(const Settings& s, const std::vector<std::string>& args, const std::string& samples_csv) {
  ::signal(SIGPIPE, SIG_IGN);  // a dead child shows as a failed write
  ProcessCluster cluster(s.nodes, args, s.data_roots);
  if (s.scenario == "failover") {
    ProcessFailover failover(cluster);
    return run_failover(s, failover);
  }
  if (s.scenario == "restore") return run_restore(s, cluster);
  const auto leader = cluster.leader();
  if (!leader) return fail("no leader elected");
  const auto idle_rss = cluster.rss_mib();
  std::optional<Samples> samples;
  if (!samples_csv.empty()) samples.emplace(samples_csv, s.nodes);

  const std::size_t target = target_node(s, *leader);
  NodeProcess& node = cluster.node(target);
  if (!node.send("run")) return fail("node " + std::to_string(target + 1) + " is gone");
  // Progress comes once a second (query-local sends none): silence beyond that means the node is stuck.
  const auto silence = 60s + std::chrono::seconds(static_cast<long>(s.warmup + s.seconds));
  std::optional<std::string> line;
  while ((line = node.read_line(silence)) && line->rfind("progress ", 0) == 0)
    if (samples) samples->add(cluster, line->substr(9));
  if (!line || line->empty() || line->front() != '{')
    return fail("node " + std::to_string(target + 1) + " gave no result" + (line ? ": " + *line : ""));

  line->pop_back();  // the closing brace
  std::printf("%s,\"rss_mib_nodes\":[%s],\"idle_rss_mib_nodes\":[%s]}\n", line->c_str(),
              join(cluster.rss_mib(), ",").c_str(), join(idle_rss, ",").c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace bench
