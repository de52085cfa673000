// libraft 0.22.1's bytes on the wire, forged by tests of the Raft port
// (tests/cluster/raft_auth_test.cc, raft_tls_test.cc), and what those tests
// check afterwards on a bank cluster: no forged term, still committing.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdint>
#include <string>

#include "catga/testing.hpp"
#include "cluster/raft_auth.h"
#include "support/bank.hpp"
#include "support/cluster.hpp"

namespace testsupport {

inline void put64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// libraft's TCP handshake (src/uv_tcp_connect.c): protocol 1, the sender's
// id, the padded address length, the address and its NUL padding.
inline std::string libraft_handshake(std::uint64_t id, const std::string& address) {
  std::string out;
  const std::size_t padded = (address.size() + 1 + 7) / 8 * 8;
  put64(out, 1);
  put64(out, id);
  put64(out, padded);
  out += address;
  out.append(padded - address.size(), '\0');
  return out;
}

// An AppendEntries result (src/uv_encoding.c, message version 0): the
// preamble (type 2, version 0, body length) and term, rejected, last index.
inline std::string append_entries_result(std::uint64_t term) {
  std::string out;
  out.push_back(2);  // RAFT_APPEND_ENTRIES_RESULT
  out.append(7, '\0');
  put64(out, 24);
  put64(out, term);
  put64(out, 0);
  put64(out, 0);
  return out;
}

// The dialler's side of raft_auth.h's exchange, as a member would run it,
// with the secret given, over any client with write(bytes) and read(n)
// (plain TCP or TLS): true when the listener welcomed it.
template <class Client>
bool authenticate(Client& c, const std::string& secret, std::uint64_t self_id, std::uint64_t listener_id,
                  const std::string& cluster_id = "catga") {
  std::uint8_t nonce[CATGA_AUTH_NONCE] = {7, 7, 7};
  std::string hello = "CATGAHI1" + std::string(reinterpret_cast<char*>(nonce), sizeof nonce);
  if (!c.write(libraft_handshake(self_id, "127.0.0.1:1") + hello)) return false;
  const std::string challenge = c.read(CATGA_AUTH_CHALLENGE);
  if (challenge.size() != CATGA_AUTH_CHALLENGE || challenge.substr(0, 8) != "CATGACH1") return false;
  const auto* listener_nonce = reinterpret_cast<const std::uint8_t*>(challenge.data() + 8);
  std::uint8_t proof[CATGA_AUTH_MAC];
  if (catga_auth_mac(secret.data(), secret.size(), "raft", 'D', cluster_id.c_str(), nonce, listener_nonce, self_id,
                     listener_id, proof) != 0)
    return false;
  if (!c.write(std::string(reinterpret_cast<char*>(proof), sizeof proof))) return false;
  return c.read(CATGA_AUTH_WELCOME) == "CATGAOK1";
}

// A blocking client whose every read gives up after 30 s: no test hangs.
class RawRaftClient {
 public:
  explicit RawRaftClient(const std::string& address) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    const auto colon = address.rfind(':');
    ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawRaftClient() { ::close(fd_); }
  RawRaftClient(const RawRaftClient&) = delete;
  RawRaftClient& operator=(const RawRaftClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  bool write(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Exactly n bytes, or fewer if the peer closed (or 30 s passed).
  std::string read(std::size_t n) {
    std::string out(n, '\0');
    std::size_t have = 0;
    while (have < n) {
      const ssize_t r = ::recv(fd_, out.data() + have, n - have, 0);
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    out.resize(have);
    return out;
  }
  // True when the peer closed the connection (EOF or reset) within 30 s.
  bool closed_by_peer() {
    char buf[256];
    while (true) {
      const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r == 0) return true;
      if (r < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// The term the forged AppendEntries results carry.
inline constexpr std::uint64_t kForgedTerm = 1003;

// The highest term of the running nodes.
inline std::uint64_t highest_term(LocalCluster<bank::State>& cluster) {
  std::uint64_t t = 0;
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    if (cluster.running(i)) t = std::max(t, cluster.app(i).status().term);
  }
  return t;
}

// The cluster still commits: a command through the leader succeeds.
inline void expect_commits(LocalCluster<bank::State>& cluster, const std::string& owner) {
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  EXPECT_THAT(cluster.app(*leader).send(bank::Open{.owner = owner}), catga::testing::IsOk());
}

// Node 3 (index 2) cannot take part: the two others elect a leader among
// themselves and commit; within the same bounded wait the outsider applied
// none of it and follows no one.
inline void expect_node_3_cut_off(LocalCluster<bank::State>& cluster) {
  auto leader = cluster.leader();
  ASSERT_TRUE(leader);
  EXPECT_NE(*leader, 2u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(cluster.app(*leader).send(bank::Open{.owner = "o" + std::to_string(i)}), catga::testing::IsOk());
  }
  const std::uint64_t committed = cluster.app(*leader).status().commit_index;
  const std::size_t follower = *leader == 0 ? 1 : 0;
  ASSERT_TRUE(wait_for([&] { return cluster.app(follower).status().applied_index >= committed; }));
  EXPECT_EQ(cluster.app(2).status().leader_id, 0u);
  EXPECT_LT(cluster.app(2).status().applied_index, committed);
}

}  // namespace testsupport
