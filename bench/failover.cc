#include "failover.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "core/application_access.hpp"
#include "support/cluster.hpp"

namespace bench {

namespace {

std::int64_t now_ns() { return Clock::now().time_since_epoch().count(); }

// Every outcome in the callers' logs: "A <tag> <latency ns>" for an
// acknowledged command, "F <tag>" for a definite failure. A line cut short by
// SIGKILL is ignored.
struct Outcomes {
  std::set<std::string> acknowledged, failed;
  LatencyHistogram latencies;
};

Outcomes read_logs(const std::filesystem::path& dir) {
  Outcomes out;
  for (const auto& file : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(file.path());
    std::string line, kind, tag;
    std::int64_t ns = 0;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      if (!(fields >> kind >> tag)) continue;
      if (kind == "A" && fields >> ns) {
        out.acknowledged.insert(tag);
        out.latencies.record(ns);
      } else if (kind == "F") {
        out.failed.insert(tag);
      }
    }
  }
  return out;
}

}  // namespace

FailoverCallers::FailoverCallers(catga::Application& app, const Settings& s, std::size_t count,
                                 const std::string& tag_prefix, const std::filesystem::path& log) {
  log_fd_ = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd_ < 0) throw std::system_error(errno, std::generic_category(), log.string());
  const std::string data(s.payload, 'x');
  for (std::size_t c = 0; c < count; ++c)
    threads_.emplace_back(
        [this, &app, data, prefix = tag_prefix + "-c" + std::to_string(c)] { call(app, data, prefix); });
}

FailoverCallers::~FailoverCallers() {
  stop_ = true;
  for (auto& t : threads_) t.join();
  ::close(log_fd_);
}

void FailoverCallers::call(catga::Application& app, const std::string& data, const std::string& prefix) {
  for (std::uint64_t i = 0; !stop_; ++i) {
    std::string tag = prefix + "-" + std::to_string(i);
    const auto start = now_ns();
    auto r = app.send(Put{.data = data, .tag = tag}, {.timeout = std::chrono::seconds(10)});
    const auto end = now_ns();
    std::string line;
    if (r)
      line = "A " + tag + " " + std::to_string(end - start) + "\n";
    else if (!r.error().outcome_unknown())
      line = "F " + tag + "\n";
    std::lock_guard lock(mu_);
    if (!line.empty() && ::write(log_fd_, line.data(), line.size()) < 0) std::perror("catga-bench: failover log");
    if (r && end > since_ns_ && first_ns_ == 0) first_ns_ = end;
  }
}

void FailoverCallers::arm(std::int64_t since_ns) {
  std::lock_guard lock(mu_);
  since_ns_ = since_ns;
  first_ns_ = 0;
}

std::int64_t FailoverCallers::first_success() const {
  std::lock_guard lock(mu_);
  return first_ns_;
}

Verdict verify(catga::Application& app, const std::filesystem::path& logs) {
  const Outcomes outcomes = read_logs(logs);
  auto& state = catga::internal::mediator_of(app).state();
  std::shared_lock lock(state.mutex());
  const auto& tagged = static_cast<catga::detail::StateCell<BenchState>&>(state).value.tagged;
  Verdict v;
  for (const auto& [tag, n] : tagged) v.duplicated += n > 1;
  for (const auto& tag : outcomes.acknowledged) v.lost += tagged.count(tag) == 0;
  for (const auto& tag : outcomes.failed) v.failed_but_applied += tagged.count(tag) != 0;
  return v;
}

int run_failover(const Settings& s, FailoverCluster& cluster) {
  if (!cluster.leader()) return std::fprintf(stderr, "catga-bench: no leader elected\n"), 1;
  testsupport::TempDir logs;
  const std::size_t n = cluster.size();
  std::vector<std::size_t> runs(n, 0);  // how often each node was started
  auto start_callers = [&](std::size_t i) {
    const std::size_t count = s.callers / n + (i < s.callers % n ? 1 : 0);  // caller c runs on node c % n
    const std::string prefix = "n" + std::to_string(i + 1) + "." + std::to_string(++runs[i]);
    if (count) cluster.start_callers(i, count, prefix, logs.path() / (prefix + ".log"));
  };
  for (std::size_t i = 0; i < n; ++i) start_callers(i);

  std::vector<std::int64_t> failover_ms, elected_ms;
  const auto t0 = Clock::now();
  for (std::size_t k = 0; k < s.kills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto leader = cluster.leader();
    if (!leader) break;
    const auto killed_at = now_ns();
    cluster.kill(*leader);
    // Whatever is acknowledged from now on went through a new leader.
    const auto gone_at = now_ns();
    for (std::size_t i = 0; i < n; ++i)
      if (i != *leader) cluster.arm(i, gone_at);
    if (cluster.leader()) elected_ms.push_back((now_ns() - killed_at) / 1'000'000);
    std::int64_t first = 0;
    testsupport::wait_for([&] {
      for (std::size_t i = 0; i < n; ++i)
        if (auto f = i != *leader ? cluster.first_success(i) : 0; f && (!first || f < first)) first = f;
      return first != 0;
    });
    if (first)
      failover_ms.push_back((first - killed_at) / 1'000'000);
    else
      std::fprintf(stderr, "catga-bench: kill %zu: no command succeeded within 30 s\n", k + 1);
    cluster.restart(*leader);
    start_callers(*leader);
  }
  Measurement m;
  m.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (std::size_t i = 0; i < n; ++i) cluster.stop_callers(i);

  // Every acknowledgement happened after the leader applied the command.
  Verdict total;
  const auto leader = cluster.leader();
  const std::uint64_t index = leader ? cluster.applied_index(*leader) : 0;
  for (std::size_t i = 0; leader && i < n; ++i) {
    const Verdict v = cluster.verify(i, index, logs.path());
    total.lost += v.lost;
    total.duplicated += v.duplicated;
    total.failed_but_applied += v.failed_but_applied;
  }
  Outcomes outcomes = read_logs(logs.path());
  m.ops = outcomes.acknowledged.size();
  m.errors = outcomes.failed.size();
  m.latencies = outcomes.latencies;
  // The callers run on every node: report the largest.
  const auto nodes_rss = cluster.rss_mib_nodes();
  m.rss_mib = nodes_rss.empty() ? rss_mib() : *std::max_element(nodes_rss.begin(), nodes_rss.end());

  auto p50_max = [](std::vector<std::int64_t>& v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? std::pair<double, double>{} : std::pair<double, double>(v[v.size() / 2], v.back());
  };
  const auto [p50, max] = p50_max(failover_ms);
  const auto [elected_p50, elected_max] = p50_max(elected_ms);
  char extra[512];
  std::snprintf(extra, sizeof extra,
                ",\"kills\":%zu,\"election_timeout_ms\":%d,\"failover_ms_p50\":%.0f,\"failover_ms_max\":%.0f,"
                "\"leader_ready_ms_p50\":%.0f,\"leader_ready_ms_max\":%.0f,"
                "\"lost\":%llu,\"duplicated\":%llu,\"failed_but_applied\":%llu%s",
                failover_ms.size(), s.election_timeout_ms, p50, max, elected_p50, elected_max,
                static_cast<unsigned long long>(total.lost), static_cast<unsigned long long>(total.duplicated),
                static_cast<unsigned long long>(total.failed_but_applied),
                nodes_rss.empty() ? "" : (",\"rss_mib_nodes\":[" + join(nodes_rss, ",") + "]").c_str());
  std::printf("%s\n", to_json(s, m, extra).c_str());
  std::fflush(stdout);
  const bool ok = leader && total.lost + total.duplicated + total.failed_but_applied == 0;
  if (!leader) std::fprintf(stderr, "catga-bench: no leader at the end, nothing verified\n");
  return ok ? 0 : 3;
}

}  // namespace bench
