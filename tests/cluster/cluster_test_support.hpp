// Helpers for the Raft layer tests: a digesting state machine, temporary
// directories, free ports, bounded waits.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "cluster/raft_node.hpp"

#include "support/cluster.hpp"

namespace catga::testing {

// Applies records by folding (index, position, record) into an FNV-1a digest.
// The result of each record is "ok:" + record. Thread-safe reads.
class DigestMachine : public internal::RecordStateMachine {
 public:
  std::string apply(const internal::ApplyInfo& info, std::string_view record) override {
    std::lock_guard lock(mu_);
    if (info.index < last_index_ || (info.index == last_index_ && count_ > 0 && info.position <= last_position_)) {
      ++order_violations_;
    }
    last_index_ = info.index;
    last_position_ = info.position;
    max_position_ = std::max(max_position_, info.position);
    mix(&info.index, sizeof info.index);
    mix(&info.position, sizeof info.position);
    mix(record.data(), record.size());
    ++count_;
    if (info.leader_time_ns <= 0 || info.term == 0) ++bad_info_;
    return "ok:" + std::string(record);
  }
  std::string snapshot() override {
    std::lock_guard lock(mu_);
    ++snapshots_;
    std::string out(24, '\0');
    std::memcpy(out.data(), &digest_, 8);
    std::memcpy(out.data() + 8, &count_, 8);
    std::memcpy(out.data() + 16, &last_index_, 8);
    return out;
  }
  Result<void> restore(std::string_view s) override {
    std::this_thread::sleep_for(restore_delay_.load());  // a large state's decode
    std::lock_guard lock(mu_);
    if (s.size() != 24) return Error(Code::data_loss, "bad snapshot size " + std::to_string(s.size()));
    std::memcpy(&digest_, s.data(), 8);
    std::memcpy(&count_, s.data() + 8, 8);
    std::memcpy(&last_index_, s.data() + 16, 8);
    last_position_ = ~0u;
    ++restores_;
    return ok();
  }

  // Each restore (a snapshot installed or loaded) takes at least `d` from now on.
  void set_restore_delay(std::chrono::milliseconds d) { restore_delay_ = d; }

  std::uint64_t digest() const { std::lock_guard l(mu_); return digest_; }
  std::uint64_t count() const { std::lock_guard l(mu_); return count_; }
  std::uint64_t last_index() const { std::lock_guard l(mu_); return last_index_; }
  int restores() const { std::lock_guard l(mu_); return restores_; }
  int snapshots() const { std::lock_guard l(mu_); return snapshots_; }
  int order_violations() const { std::lock_guard l(mu_); return order_violations_; }
  int bad_info() const { std::lock_guard l(mu_); return bad_info_; }
  std::uint32_t max_position() const { std::lock_guard l(mu_); return max_position_; }

 private:
  void mix(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) {
      digest_ ^= b[i];
      digest_ *= 1099511628211ull;
    }
  }
  mutable std::mutex mu_;
  std::atomic<std::chrono::milliseconds> restore_delay_{std::chrono::milliseconds(0)};
  std::uint64_t digest_ = 14695981039346656037ull;
  std::uint64_t count_ = 0;
  std::uint64_t last_index_ = 0;
  std::uint32_t last_position_ = 0;
  std::uint32_t max_position_ = 0;
  int restores_ = 0;
  int snapshots_ = 0;
  int order_violations_ = 0;
  int bad_info_ = 0;
};

// Temporary directories and free ports: shared with the other cluster tests.
using testsupport::free_port;
using testsupport::TempDir;

// Polls `pred` until true or `limit` passes. Generous limits; never a timing assertion.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

inline std::string describe(const Error& e) {
  return "code " + std::to_string(static_cast<int>(e.code())) + ": " + e.message();
}

// A one-member cluster on 127.0.0.1:`port` with quick elections.
inline ClusterOptions lone_member(const std::filesystem::path& dir, int port) {
  ClusterOptions o;
  o.node_id = 1;
  o.members = {{1, "127.0.0.1:" + std::to_string(port)}};
  o.data_dir = dir;
  o.election_timeout = std::chrono::milliseconds(500);
  o.heartbeat_interval = std::chrono::milliseconds(50);
  return o;
}

}  // namespace catga::testing
