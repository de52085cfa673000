// The failover scenario of catga-bench, for both modes.
//
// Callers on every node send tagged commands while the leader is stopped
// (in-process) or SIGKILLed (multi-process) and restarted, --kills times. Each
// caller appends every definite outcome to a log file the moment it learns it,
// so the record survives its process being killed; at the end every node's
// state is checked against the logs: no acknowledged command lost, none
// applied twice, none reported failed yet applied.
//
// Failover time: from the stop to the first command acknowledged after the
// old leader is gone; also reported, the time until a node reports itself a
// ready leader. Times are steady_clock (CLOCK_MONOTONIC), which is the
// same clock in every process.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "bench.hpp"

namespace bench {

// Synchronous callers on one node's Application, running in that node's process.
class FailoverCallers {
 public:
  // Starts `count` callers; their tags start with `tag_prefix` (unique per run
  // of a node) and their outcomes go to `log`. Throws if `log` cannot be opened.
  FailoverCallers(catga::Application& app, const Settings& s, std::size_t count, const std::string& tag_prefix,
                  const std::filesystem::path& log);
  // Stops and joins the callers (each waits for its command, bounded by the
  // command timeout).
  ~FailoverCallers();

  // From now on remember the first acknowledgement that arrives after `since_ns`.
  void arm(std::int64_t since_ns);
  // That acknowledgement's time, or 0 if none yet.
  std::int64_t first_success() const;

 private:
  void call(catga::Application& app, const std::string& data, const std::string& prefix);
  std::atomic<bool> stop_{false};
  int log_fd_ = -1;
  mutable std::mutex mu_;
  std::int64_t since_ns_ = INT64_MAX, first_ns_ = 0;
  std::vector<std::thread> threads_;
};

struct Verdict {
  std::uint64_t lost = 0, duplicated = 0, failed_but_applied = 0;
};

// Checks `app`'s applied state against the callers' logs under `logs`.
Verdict verify(catga::Application& app, const std::filesystem::path& logs);

// What the failover scenario needs from a cluster of either mode. Nodes are
// indexed 0..size()-1; every call is bounded in time.
class FailoverCluster {
 public:
  virtual ~FailoverCluster() = default;
  virtual std::size_t size() const = 0;
  virtual std::optional<std::size_t> leader() = 0;
  // Stops node i abruptly (its callers go with it); it is gone on return.
  virtual void kill(std::size_t i) = 0;
  virtual void restart(std::size_t i) = 0;
  virtual void start_callers(std::size_t i, std::size_t count, const std::string& tag_prefix,
                             const std::filesystem::path& log) = 0;
  virtual void stop_callers(std::size_t i) = 0;
  virtual void arm(std::size_t i, std::int64_t since_ns) = 0;
  virtual std::int64_t first_success(std::size_t i) = 0;
  virtual std::uint64_t applied_index(std::size_t i) = 0;
  // Waits until node i has applied `index`, then verifies it against `logs`.
  virtual Verdict verify(std::size_t i, std::uint64_t index, const std::filesystem::path& logs) = 0;
  // Each node's RSS if each runs in a process of its own, else nothing.
  virtual std::vector<double> rss_mib_nodes() { return {}; }
};

// Runs the scenario, prints its JSON line; 0 if the check passed, 3 if not.
int run_failover(const Settings& s, FailoverCluster& cluster);

}  // namespace bench
