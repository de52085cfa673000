// Helpers for tests that run real nodes on loopback: free ports, temporary
// directories, bounded waiting, and a cluster of Applications in one process.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catga/application.hpp"
#include "core/application_access.hpp"

namespace testsupport {

// The cluster secret test clusters use: their Raft ports run the
// authenticated transport (docs/security.md), as a production cluster should.
inline const std::string kClusterSecret = "catga-test-cluster-secret";

// True when `port` can be bound on 127.0.0.1 right now.
inline bool port_is_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

// Claims `port` for this test process until it exits, so that no other test
// process running in parallel is handed the same port between this process's
// check and its node's bind (seen in CI: one test's node bound another's Raft
// port, and the second node failed to start). The claim is an abstract Unix
// socket named after the port — no file, released by the kernel when the
// process ends, however it ends. False if another process holds it.
inline bool claim_port(int port) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // cannot claim: the bind check alone decides
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string name = "catga-test-port-" + std::to_string(port);
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] == 0: the abstract namespace
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    ::close(fd);
    return false;
  }
  return true;  // the descriptor stays open on purpose: the claim lasts until the process exits
}

// A port that was free a moment ago on 127.0.0.1 and that no other test
// process has claimed (claim_port; this process claims it). Picked at random *below*
// the kernel's ephemeral range (ip_local_port_range), so that the outgoing
// connections of tests running in parallel — which take ephemeral ports —
// cannot grab it between this call and the node's bind (seen in CI: "peer
// channel cannot listen on 127.0.0.1:58179: Address already in use").
inline int free_port() {
  int ephemeral_low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "re")) {
    if (std::fscanf(f, "%d", &ephemeral_low) != 1) ephemeral_low = 32768;
    std::fclose(f);
  }
  const int high = ephemeral_low - 1;
  const int low = std::max(1024, high - 12000);
  static std::mt19937 pick{std::random_device{}()};
  if (high > low) {
    std::uniform_int_distribution<int> in_range(low, high);
    for (int tries = 0; tries < 200; ++tries) {
      const int port = in_range(pick);
      if (port_is_free(port) && claim_port(port)) return port;
    }
  }
  // No room below the ephemeral range: let the kernel pick (bind to 0).
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A fresh directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("catga-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Polls `pred` until it holds or `limit` passes; returns whether it held.
// The limit bounds the test's run time; it is not a performance assertion.
inline bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// N Applications of one service, each a member of one Raft cluster on
// 127.0.0.1, with durable logs in a temporary directory.
template <class State>
class LocalCluster {
 public:
  using Register = std::function<void(catga::ApplicationBuilder<State>&, std::size_t node)>;

  LocalCluster(std::size_t n, Register register_handlers, std::function<void(catga::ClusterOptions&)> tune = {})
      : register_(std::move(register_handlers)), tune_(std::move(tune)) {
    std::set<int> used;
    auto fresh_port = [&] {
      int port;
      do port = free_port();
      while (!used.insert(port).second);
      return port;
    };
    for (std::size_t i = 0; i < n; ++i) {
      const int raft = fresh_port(), peer = fresh_port();
      members_.push_back(catga::Member{i + 1, "127.0.0.1:" + std::to_string(raft), catga::MemberRole::voter,
                                       "127.0.0.1:" + std::to_string(peer)});
    }
    apps_.resize(n);
    // One at a time, each before its peers are up: the operator's word that
    // this is a new cluster (ClusterOptions::new_cluster).
    forming_ = true;
    for (std::size_t i = 0; i < n; ++i) start(i);
    forming_ = false;
  }
  ~LocalCluster() {
    for (auto& app : apps_) app.reset();
  }

  // Prepares a new member (Raft port P, peer port P + 1, the default rule;
  // with `explicit_peer_address`, a peer address of its own on another free
  // port), starts it in join mode and returns its index; the caller adds it
  // to the configuration through the leader.
  std::size_t add_node(bool explicit_peer_address = false) {
    int raft = 0;
    for (int tries = 0; tries < 100; ++tries) {
      raft = free_port();
      if (raft < 65535 && port_is_free(raft + 1) && claim_port(raft + 1)) break;
    }
    std::string peer;
    while (explicit_peer_address && peer.empty()) {
      const int p = free_port();
      if (p != raft && p != raft + 1) peer = "127.0.0.1:" + std::to_string(p);
    }
    const std::size_t i = members_.size();
    members_.push_back(catga::Member{i + 1, "127.0.0.1:" + std::to_string(raft), catga::MemberRole::voter, peer});
    joining_.insert(i);
    apps_.emplace_back();
    start(i);
    return i;
  }
  const catga::Member& member(std::size_t i) const { return members_[i]; }
  // Node i's next start is in join mode (it was removed and is added again).
  void set_joining(std::size_t i, bool joining = true) {
    if (joining) joining_.insert(i);
    else joining_.erase(i);
  }

  catga::ClusterOptions options(std::size_t i) const {
    catga::ClusterOptions o;
    o.node_id = i + 1;
    o.members = members_;
    o.join = joining_.count(i) > 0;
    o.new_cluster = forming_ && !o.join;
    o.data_dir = dir_.path() / ("node" + std::to_string(i + 1));
    o.election_timeout = std::chrono::milliseconds(500);
    o.heartbeat_interval = std::chrono::milliseconds(50);
    o.peer_secret = kClusterSecret;
    if (tune_) tune_(o);
    return o;
  }

  // `adjust` changes this start's options only.
  catga::Result<void> try_start(std::size_t i, const std::function<void(catga::ClusterOptions&)>& adjust = {}) {
    catga::ApplicationBuilder<State> builder;
    register_(builder, i);
    auto o = options(i);
    if (adjust) adjust(o);
    builder.cluster(std::move(o));
    auto app = builder.build();
    if (!app) return app.error();
    apps_[i] = std::move(*app);
    return {};
  }
  void start(std::size_t i) {
    if (auto r = try_start(i); !r) throw std::runtime_error("node " + std::to_string(i + 1) + ": " + r.error().to_string());
  }
  void stop(std::size_t i) { apps_[i].reset(); }
  // Freezes node i's Raft loop, like SIGSTOP would.
  void pause(std::size_t i, std::chrono::milliseconds d) { catga::internal::ApplicationAccess::replicator(*apps_[i])->pause_for_test(d); }
  bool running(std::size_t i) const { return apps_[i] != nullptr; }

  catga::Application& app(std::size_t i) { return *apps_[i]; }
  std::size_t size() const { return apps_.size(); }

  // The index of a running node that is a ready leader, once there is one.
  std::optional<std::size_t> leader(std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    std::optional<std::size_t> found;
    wait_for([&] {
      for (std::size_t i = 0; i < apps_.size(); ++i) {
        if (!apps_[i]) continue;
        auto s = apps_[i]->status();
        if (s.role == catga::NodeRole::leader && s.ready) {
          found = i;
          return true;
        }
      }
      return false;
    }, limit);
    return found;
  }

  // Waits until every running node has applied at least `index`.
  bool wait_applied(std::uint64_t index, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    return wait_for([&] {
      for (auto& app : apps_)
        if (app && app->status().applied_index < index) return false;
      return true;
    }, limit);
  }

  // Every running node applied all that any of them knows as committed, and
  // all hold the same state as node `leader`.
  bool converged(std::size_t leader) {
    // The highest commit index any running node knows: `leader` may have lost
    // the leadership since the caller learnt it, and a follower hears of the
    // last commits only with the next heartbeat.
    std::uint64_t commit = 0;
    for (auto& app : apps_)
      if (app) commit = std::max(commit, app->status().commit_index);
    if (!wait_applied(commit)) return false;
    for (std::size_t i = 0; i < apps_.size(); ++i) {
      if (apps_[i] && digest(i) != digest(leader)) return false;
    }
    return true;
  }

  // Snapshot bytes of node i's state: equal bytes, equal state.
  std::string digest(std::size_t i) {
    auto& state = catga::internal::mediator_of(*apps_[i]).state();
    std::shared_lock lock(state.mutex());
    return state.snapshot();
  }

 private:
  TempDir dir_;
  std::vector<catga::Member> members_;
  std::set<std::size_t> joining_;
  Register register_;
  std::function<void(catga::ClusterOptions&)> tune_;
  bool forming_ = false;
  std::vector<std::unique_ptr<catga::Application>> apps_;
};

}  // namespace testsupport
