// The closed-loop measurements shared by both modes of catga-bench.
#include <algorithm>
#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <thread>

#include "bench.hpp"
#include "support/cluster.hpp"
#include "support/tls_fixture.hpp"

namespace bench {

namespace {
// The object --grow and --preload put under `id`: the same on every node.
Item item(std::uint64_t id) { return Item{"product-" + std::to_string(id % 1000), static_cast<std::int32_t>(id % 7 + 1)}; }
}  // namespace

void register_bench(catga::ApplicationBuilder<BenchState>& b, std::size_t) {
  b.command<Put>([](BenchState& s, const Put& p) {
     s.bytes += p.data.size();
     if (!p.tag.empty()) s.tagged[p.tag]++;
     ++s.commands;
     if (p.keep) {
       const std::uint64_t id = s.objects.empty() ? 1 : s.objects.rbegin()->first + 1;
       s.objects.emplace(id, item(id));
     }
     return s.commands;
   })
      .command<Preload>([](BenchState& s, const Preload& p) {
        auto hint = s.objects.end();
        for (std::uint64_t id = p.first; id < p.first + p.count; ++id) {
          hint = s.objects.emplace_hint(hint, id, item(id));
        }
        return p.count;
      })
      .query<Count>([](const BenchState& s, const Count&) { return s.commands; });
}

void tune(const Settings& s, catga::ClusterOptions& o) {
  o.election_timeout = std::chrono::milliseconds(s.election_timeout_ms);
  o.heartbeat_interval = std::chrono::milliseconds(s.heartbeat_ms);
  if (s.max_in_flight) o.max_entries_in_flight = s.max_in_flight;
  o.snapshot_threshold = s.snapshot_threshold;
  o.snapshot_trailing = s.snapshot_trailing;
  o.snapshot_threshold_bytes = s.snapshot_threshold_bytes;
  o.snapshot_trailing_bytes = s.snapshot_trailing_bytes;
  o.snapshot_growth_percent = s.snapshot_growth_percent;
  o.snapshot_in_child = s.snapshot_in_child;
  o.peer_secret = s.peer_secret;
  if (!s.tls_dir.empty()) {
    const std::filesystem::path dir = s.tls_dir;
    const std::string node = "node-" + std::to_string(o.node_id);
    o.tls_ca_file = dir / "ca.pem";
    o.tls_cert_file = dir / (node + ".pem");
    o.tls_key_file = dir / (node + ".key");
  }
}

void write_throwaway_tls(const std::filesystem::path& dir, std::size_t nodes) {
  testsupport::TlsFixture fixture(dir / "generated");
  std::filesystem::copy_file(fixture.ca_file(), dir / "ca.pem");
  for (std::size_t id = 1; id <= nodes; ++id) {
    const auto files = fixture.node(id);
    const std::string node = "node-" + std::to_string(id);
    std::filesystem::copy_file(files.cert_file, dir / (node + ".pem"));
    std::filesystem::copy_file(files.key_file, dir / (node + ".key"));
  }
}

std::size_t target_node(const Settings& s, std::size_t leader) {
  const bool on_leader = s.scenario == "command-leader" || s.scenario == "query-linearizable" ||
                         s.scenario == "query-linearizable-blocking";
  return on_leader ? leader : (leader + 1) % s.nodes;
}

// Bucket i < 64 holds the value i; above, bucket 32 * shift + top holds the
// values whose top 6 bits are `top` (32..63) once shifted right by `shift`.
std::size_t LatencyHistogram::bucket(std::int64_t ns) {
  const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0));
  const int shift = std::max(0, static_cast<int>(std::bit_width(v)) - 1 - kSubBits);
  return (static_cast<std::size_t>(shift) << kSubBits) + (v >> shift);
}

void LatencyHistogram::record(std::int64_t ns) { add(bucket(ns), 1); }

void LatencyHistogram::add(std::size_t bucket, std::uint64_t n) {
  counts_[bucket] += n;
  total_ += n;
}

void SharedHistogram::drain(LatencyHistogram& into) {
  for (std::size_t i = 0; i < counts_.size(); ++i)
    if (const auto n = counts_[i].exchange(0, std::memory_order_relaxed)) into.add(i, n);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
}

double LatencyHistogram::percentile_us(double p) const {
  if (total_ == 0) return 0;
  const auto rank = std::min(total_ - 1, static_cast<std::uint64_t>(p * static_cast<double>(total_)));
  std::uint64_t seen = 0;
  std::size_t i = 0;
  while (seen + counts_[i] <= rank) seen += counts_[i++];
  const std::size_t sub = std::size_t{1} << kSubBits;
  const int shift = i < 2 * sub ? 0 : static_cast<int>(i >> kSubBits) - 1;
  const std::uint64_t top = i < 2 * sub ? i : sub + (i & (sub - 1));
  const double width = static_cast<double>(std::uint64_t{1} << shift);
  return (static_cast<double>(top << shift) + (width - 1) / 2) / 1000.0;
}

double rss_mib(const std::string& pid, const std::string& field) {
  std::ifstream status("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(field.size())) / 1024.0;
  }
  return 0;
}

std::string join(const std::vector<double>& values, const char* separator) {
  std::string out;
  char buf[32];
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.1f", i ? separator : "", values[i]);
    out += buf;
  }
  return out;
}

std::string to_json(const Settings& s, const Measurement& m, const std::string& extra) {
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "{\"scenario\":\"%s\",\"mode\":\"%s\",\"nodes\":%zu,\"callers\":%zu,\"payload\":%zu,"
                "\"ops\":%llu,\"ops_per_sec\":%.0f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
                "\"errors\":%llu,\"rss_mib\":%.1f,\"snapshot_threshold\":%llu,\"snapshot_trailing\":%llu,"
                "\"snapshot_threshold_bytes\":%llu,\"snapshot_trailing_bytes\":%llu",
                s.scenario.c_str(), s.mode.c_str(), s.nodes, s.callers, s.payload,
                static_cast<unsigned long long>(m.ops), m.seconds > 0 ? static_cast<double>(m.ops) / m.seconds : 0.0,
                m.latencies.percentile_us(0.50), m.latencies.percentile_us(0.99), m.latencies.percentile_us(0.999),
                static_cast<unsigned long long>(m.errors), m.rss_mib,
                static_cast<unsigned long long>(s.snapshot_threshold),
                static_cast<unsigned long long>(s.snapshot_trailing),
                static_cast<unsigned long long>(s.snapshot_threshold_bytes),
                static_cast<unsigned long long>(s.snapshot_trailing_bytes));
  std::string json = buf;
  if (s.preload > 0 || s.grow) {
    std::snprintf(buf, sizeof buf,
                  ",\"preload\":%llu,\"grow\":%s,\"snapshot_in_child\":%s,\"snapshot_growth_percent\":%u,"
                  "\"preload_seconds\":%.1f,\"snapshots\":%llu,\"snapshot_pause_max_ms\":%.2f,"
                  "\"snapshot_encode_ms\":%.1f,\"snapshot_mib\":%.1f",
                  static_cast<unsigned long long>(s.preload), s.grow ? "true" : "false",
                  s.snapshot_in_child ? "true" : "false", s.snapshot_growth_percent, m.preload_seconds,
                  static_cast<unsigned long long>(m.snapshots), m.snapshot_pause_max_ms, m.snapshot_encode_ms,
                  m.snapshot_mib);
    json += buf;
  }
  if (s.scenario == "query-local") json += ",\"note\":\"latency per query, averaged over batches of 1000\"";
  return json + extra + "}";
}

namespace {

// Sleeps `seconds`, calling `tick` about once a second.
void sleep_ticking(double seconds, const Tick& tick, const std::atomic<std::uint64_t>& completed,
                   SharedHistogram& latest) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    std::this_thread::sleep_until(std::min(end, Clock::now() + std::chrono::seconds(1)));
    if (!tick) continue;
    Progress p;
    p.completed = completed.load(std::memory_order_relaxed);
    latest.drain(p.latest);
    tick(p);
  }
}

// What the callers share with the measuring thread while a scenario runs.
struct Window {
  std::atomic<bool> measuring{false}, stopping{false};
  std::atomic<std::uint64_t> completed{0};
  SharedHistogram latest;  // every completion, for the once-a-second progress
};

// One caller's own record: the latencies of its requests in the measured
// window, and its failed requests.
struct CallerRecord {
  LatencyHistogram latencies;
  std::uint64_t errors = 0;

  // A request this caller sent at `start` has just completed.
  void complete(Window& w, Clock::time_point start, bool ok) {
    w.completed.fetch_add(1, std::memory_order_relaxed);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    if (ok) w.latest.record(ns);
    if (!ok)
      ++errors;
    else if (w.measuring.load(std::memory_order_relaxed))
      latencies.record(ns);
  }
  // Adds this caller's requests to `m` (ops: the measured ones that succeeded).
  void add_to(Measurement& m) const {
    m.latencies.merge(latencies);
    m.errors += errors;
    m.ops = m.latencies.count();
  }
};

// The warm-up, then the measured window; then the callers are told to stop.
// Returns the measured window's length in seconds.
double run_window(const Settings& s, Window& w, const Tick& tick) {
  sleep_ticking(s.warmup, tick, w.completed, w.latest);
  w.measuring = true;
  const auto t0 = Clock::now();
  sleep_ticking(s.seconds, tick, w.completed, w.latest);
  w.measuring = false;
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  w.stopping = true;
  return seconds;
}

using Issue = std::function<void(std::function<void(bool ok)>)>;  // sends one request

// A closed-loop caller driven by completions: each result sends the next request.
struct Loop {
  const Issue* issue;
  Window* window;
  CallerRecord record;
  std::atomic<bool> done{false};
  // 1 while next() is inside issue(), 2 once a completion came meanwhile:
  // a completion that runs inline (a read servable at once, an immediate
  // error) hands the next call back to next()'s loop instead of recursing,
  // which ran out of stack when every call failed at once.
  std::atomic<int> issuing{0};

  void next() {
    for (;;) {
      if (window->stopping.load(std::memory_order_relaxed)) {
        done = true;
        return;
      }
      auto start = Clock::now();
      issuing.store(1);
      (*issue)([this, start](bool ok) {
        record.complete(*window, start, ok);
        int inside = 1;
        if (!issuing.compare_exchange_strong(inside, 2)) next();
      });
      if (issuing.exchange(0) != 2) return;
    }
  }
};

// Runs `callers` closed loops of `issue` through the warm-up and the measured window.
Measurement run_loops(const Settings& s, const Issue& issue, const Tick& tick) {
  auto window = std::make_unique<Window>();
  std::vector<std::unique_ptr<Loop>> loops;
  for (std::size_t i = 0; i < s.callers; ++i) {
    auto l = std::make_unique<Loop>();
    l->issue = &issue;
    l->window = window.get();
    loops.push_back(std::move(l));
  }
  for (auto& l : loops) l->next();
  const double seconds = run_window(s, *window, tick);
  testsupport::wait_for(
      [&] { return std::all_of(loops.begin(), loops.end(), [](auto& l) { return l->done.load(); }); });
  Measurement m;
  m.seconds = seconds;
  for (auto& l : loops) l->record.add_to(m);
  return m;
}

using Call = std::function<bool()>;  // sends one request and waits for its result: ok or not

// The blocking form: `callers` threads, each calling `call` in a closed loop
// through the warm-up and the measured window.
Measurement run_threads(const Settings& s, const Call& call, const Tick& tick) {
  auto window = std::make_unique<Window>();
  std::vector<CallerRecord> records(s.callers);
  std::vector<std::thread> threads;
  threads.reserve(s.callers);
  for (std::size_t c = 0; c < s.callers; ++c) {
    threads.emplace_back([&, c] {
      while (!window->stopping.load(std::memory_order_relaxed)) {
        const auto start = Clock::now();
        const bool ok = call();
        records[c].complete(*window, start, ok);
      }
    });
  }
  const double seconds = run_window(s, *window, tick);
  for (auto& t : threads) t.join();
  Measurement m;
  m.seconds = seconds;
  for (auto& r : records) r.add_to(m);
  return m;
}

// Local reads are too fast to time one by one: time batches of 1000.
Measurement measure_query_local(const Settings& s, catga::Application& app) {
  std::atomic<bool> failed{false};
  std::vector<LatencyHistogram> per(s.callers);
  std::vector<std::thread> threads;
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.seconds));
  auto t0 = Clock::now();
  for (std::size_t c = 0; c < s.callers; ++c) {
    threads.emplace_back([&, c] {
      while (Clock::now() < end) {
        auto start = Clock::now();
        for (int i = 0; i < 1000; ++i) {
          auto r = app.send(Count{});
          if (!r) failed = true;
        }
        per[c].record(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count() / 1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  Measurement m;
  m.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& h : per) m.latencies.merge(h);
  m.ops = m.latencies.count() * 1000;
  m.errors = failed ? 1 : 0;
  return m;
}

Measurement measure_scenario(const Settings& s, catga::Application& app, const Tick& tick) {
  if (s.scenario == "query-local") return measure_query_local(s, app);
  // The consistent reads, in callback form (closed loops driven by
  // completions) or, for the scenarios named "...-blocking", in blocking form
  // (a thread per caller).
  const bool blocking = is_blocking(s.scenario);
  const std::string base = blocking ? s.scenario.substr(0, s.scenario.size() - kBlocking.size()) : s.scenario;
  if (base == "query-read-your-writes") {
    // A write (forwarded: the target is a follower), then a read of it on the
    // same node: the read waits until this node applied the write's index.
    const std::string data(s.payload, 'x');
    const auto at = [](std::uint64_t index) {
      return catga::QueryOptions{.consistency = catga::Consistency::read_your_writes, .min_index = index};
    };
    if (blocking) {
      return run_threads(
          s,
          [&] {
            const auto w = app.send_receipt(Put{.data = data});
            return w.result.has_value() && app.send(Count{}, at(w.index)).has_value();
          },
          tick);
    }
    return run_loops(
        s,
        [&](std::function<void(bool)> done) {
          app.send_receipt(Put{.data = data}, catga::CommandOptions{},
                           [&app, at, done = std::move(done)](catga::Receipt<std::uint64_t> r) mutable {
                             if (!r.result) return done(false);
                             app.send(Count{}, at(r.index),
                                      [done = std::move(done)](catga::Result<std::uint64_t> q) { done(q.has_value()); });
                           });
        },
        tick);
  }
  if (base == "query-linearizable" || base == "query-linearizable-follower") {
    const catga::QueryOptions linearizable{.consistency = catga::Consistency::linearizable};
    if (blocking) return run_threads(s, [&] { return app.send(Count{}, linearizable).has_value(); }, tick);
    return run_loops(
        s,
        [&](std::function<void(bool)> done) {
          app.send(Count{}, linearizable,
                   [done = std::move(done)](catga::Result<std::uint64_t> r) { done(r.has_value()); });
        },
        tick);
  }
  const std::string data(s.payload, 'x');
  return run_loops(
      s,
      [&](std::function<void(bool)> done) {
        app.send(Put{.data = data, .keep = s.grow}, catga::CommandOptions{},
                 [done = std::move(done)](catga::Result<std::uint64_t> r) { done(r.has_value()); });
      },
      tick);
}

}  // namespace

Preloaded preload(const Settings& s, catga::Application& app) {
  constexpr std::uint64_t kBatch = 100'000;
  const auto t0 = Clock::now();
  for (std::uint64_t first = 1; first <= s.preload; first += kBatch) {
    const std::uint64_t count = std::min(kBatch, s.preload - first + 1);
    auto r = app.send(Preload{.first = first, .count = count});
    if (!r) throw std::runtime_error("preload: " + r.error().message());
  }
  const auto snapshot = app.take_snapshot();
  return Preloaded{std::chrono::duration<double>(Clock::now() - t0).count(), snapshot ? *snapshot : 0};
}

Measurement measure(const Settings& s, catga::Application& app, const Tick& tick) {
  const double preload_seconds = s.preload > 0 ? preload(s, app).seconds : 0;
  const catga::NodeCounters before = app.status().counters;
  Measurement m = measure_scenario(s, app, tick);
  const catga::NodeCounters after = app.status().counters;
  m.rss_mib = rss_mib();
  m.preload_seconds = preload_seconds;
  m.snapshots = after.snapshots_taken - before.snapshots_taken;
  m.snapshot_pause_max_ms = static_cast<double>(after.snapshot_pause_max.count()) / 1000.0;
  m.snapshot_encode_ms = static_cast<double>(after.snapshot_encode_time.count()) / 1000.0;
  m.snapshot_mib = static_cast<double>(after.snapshot_bytes) / (1 << 20);
  return m;
}

}  // namespace bench
