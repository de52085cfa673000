// catga-bench internals: the benchmark service, the settings, the closed-loop
// measurements that run on one node's Application, and the JSON result line.
//
// A measurement runs on whichever Application it is given: a node of an
// in-process LocalCluster, or the node of a `--serve-node` child process
// (multi_process.cc). Everything here is called from one thread (the
// process's main thread); callers' completions arrive on the node's threads.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "catga/application.hpp"

namespace bench {

using Clock = std::chrono::steady_clock;

// One object of a growing state (an order: product and quantity).
struct Item {
  std::string product;
  std::int32_t quantity = 0;
  MSGPACK_DEFINE_MAP(product, quantity);
};

struct BenchState {
  std::uint64_t commands = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, std::uint32_t> tagged;  // failover: tag → times applied
  std::map<std::uint64_t, Item> objects;        // --preload / --grow
  MSGPACK_DEFINE_MAP(commands, bytes, tagged, objects);
};

struct Put {
  using catga_message = catga::Command<std::uint64_t, "bench.put.v1">;
  std::string data;
  std::string tag;    // failover only
  bool keep = false;  // --grow: the command adds an object to the state
  MSGPACK_DEFINE_MAP(data, tag, keep);
};

// Adds objects first .. first+count-1 on every node (--preload): the state
// grows through the log, in large batches, so every node holds the same.
struct Preload {
  using catga_message = catga::Command<std::uint64_t, "bench.preload.v1">;
  std::uint64_t first = 0;
  std::uint64_t count = 0;
  MSGPACK_DEFINE_MAP(first, count);
};

struct Count {
  using catga_message = catga::Query<std::uint64_t, "bench.count.v1">;
};

void register_bench(catga::ApplicationBuilder<BenchState>& b, std::size_t node);

struct Settings {
  std::string scenario = "command-leader";
  std::string mode = "in-process";
  std::size_t nodes = 3, callers = 1, payload = 64, kills = 10;
  double seconds = 5, warmup = 1;
  int election_timeout_ms = 1000, heartbeat_ms = 100;
  unsigned max_in_flight = 0;  // 0: the library's default
  std::uint64_t snapshot_threshold = catga::ClusterOptions{}.snapshot_threshold;
  std::uint64_t snapshot_trailing = catga::ClusterOptions{}.snapshot_trailing;
  std::uint64_t snapshot_threshold_bytes = catga::ClusterOptions{}.snapshot_threshold_bytes;
  std::uint64_t snapshot_trailing_bytes = catga::ClusterOptions{}.snapshot_trailing_bytes;
  unsigned snapshot_growth_percent = catga::ClusterOptions{}.snapshot_growth_percent;
  bool snapshot_in_child = true;
  std::uint64_t preload = 0;  // objects put into the state before the measurement
  bool grow = false;          // every measured command adds an object
  std::string peer_secret;    // ClusterOptions::peer_secret; empty: insecure mode
  std::string tls_dir;        // --tls: ca.pem, node-<id>.pem and .key; empty: no TLS
  std::uint64_t restore_leader_limit_mib = 6144;  // restore: abandon the install past this leader RSS
  std::vector<std::string> data_roots;  // multi-process: node i's data directory goes under the i-th
};

// The cluster options every node of a run gets on top of its membership.
void tune(const Settings& s, catga::ClusterOptions& o);

// --tls: a throwaway CA and a certificate per node (subject "node-<id>") in
// `dir`, the files tune() points every node at.
void write_throwaway_tls(const std::filesystem::path& dir, std::size_t nodes);

// The consistent-read scenarios come in two forms: closed loops of
// callbacks (query-linearizable, ...), and blocking calls, one thread per
// caller, named with this suffix (query-linearizable-blocking, ...).
inline constexpr std::string_view kBlocking = "-blocking";
inline bool is_blocking(const std::string& scenario) { return scenario.ends_with(kBlocking); }

// Which node the load runs on: the leader for command-leader and
// query-linearizable (either form), the next node (a follower) otherwise.
std::size_t target_node(const Settings& s, std::size_t leader);

// Latencies in a log-linear histogram: fixed memory however long the run
// (the soak runs for minutes), each value within 1/64 of the true one.
class LatencyHistogram {
 public:
  void record(std::int64_t ns);
  void merge(const LatencyHistogram& other);
  // The p-quantile (0..1) in microseconds; 0 when empty.
  double percentile_us(double p) const;
  std::uint64_t count() const { return total_; }

  static constexpr int kSubBits = 5;  // 32 buckets per power of two
  static constexpr std::size_t kBuckets = 64 << kSubBits;
  // The bucket a value of `ns` falls into, and adding `n` values to one.
  static std::size_t bucket(std::int64_t ns);
  void add(std::size_t bucket, std::uint64_t n);

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
};

// A histogram the callers record into from any thread while the measuring
// thread drains it once a second (the soak's per-second and per-minute tails).
class SharedHistogram {
 public:
  void record(std::int64_t ns) {
    counts_[LatencyHistogram::bucket(ns)].fetch_add(1, std::memory_order_relaxed);
  }
  // Moves everything recorded so far into `into` and starts empty.
  void drain(LatencyHistogram& into);

 private:
  std::array<std::atomic<std::uint64_t>, LatencyHistogram::kBuckets> counts_{};
};

struct Measurement {
  std::uint64_t ops = 0, errors = 0;
  double seconds = 0;
  double rss_mib = 0;  // of the process that generated the load, at the end
  LatencyHistogram latencies;
  // --preload: seconds to put the objects in; the target node's snapshots
  // during the measured window and its longest loop-thread pause per snapshot.
  double preload_seconds = 0;
  std::uint64_t snapshots = 0;
  double snapshot_pause_max_ms = 0, snapshot_encode_ms = 0, snapshot_mib = 0;
};

// What a measurement reports about once a second while it runs (warm-up
// included): requests completed so far and the latencies of those completed
// since the previous report.
struct Progress {
  std::uint64_t completed = 0;
  LatencyHistogram latest;
};
using Tick = std::function<void(const Progress&)>;

// Puts s.preload objects into the state through the log, 100,000 a command,
// then asks for a snapshot of it (on the leader; elsewhere it is skipped and
// snapshot_index is 0), so a measurement starts with the large state on disk.
// The snapshot file is written after this returns.
struct Preloaded {
  double seconds = 0;
  std::uint64_t snapshot_index = 0;  // the snapshot covers at least this index
};
Preloaded preload(const Settings& s, catga::Application& app);

// Runs the settings' scenario (not failover) on `app` and measures it.
Measurement measure(const Settings& s, catga::Application& app, const Tick& tick = {});

// The VmRSS of a process ("self" or a pid) in MiB, or another field of
// /proc/PID/status counted in kB (VmHWM: its peak RSS); 0 if it is gone.
double rss_mib(const std::string& pid = "self", const std::string& field = "VmRSS:");

// "1.0<separator>2.5...": values with one decimal.
std::string join(const std::vector<double>& values, const char* separator);

// One JSON object (no newline): the stable fields, then `extra` (",\"k\":v...").
std::string to_json(const Settings& s, const Measurement& m, const std::string& extra = "");

}  // namespace bench
