// libraft 0.22.1's bytes on the wire, forged by tests of the Raft port
// (tests/cluster/raft_auth_test.cc, raft_tls_test.cc), and what those tests
// check afterwards on a bank cluster: no forged term, still committing.
#pragma once

#include <gtest/gtest.h>

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

}  // namespace testsupport
