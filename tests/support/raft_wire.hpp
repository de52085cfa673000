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
#include "support/libraft_wire.hpp"
#include "support/cluster.hpp"

namespace testsupport {

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
