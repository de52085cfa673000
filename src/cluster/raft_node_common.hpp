// What the translation units of RaftNode share (raft_node.cc: lifecycle,
// loop and apply; raft_node_membership.cc; raft_node_health.cc): the errors
// a node answers once stopped, and the member roles as the C door spells
// them. Not for use outside RaftNode.
#pragma once

#include <string>

#include "catga/cluster.hpp"
#include "catga/result.hpp"
#include "cluster/node_stopped.hpp"
#include "cluster/raft_c.h"

namespace catga::internal::raft_node_common {

inline int c_role(MemberRole role) {
  switch (role) {
    case MemberRole::standby: return CATGA_ROLE_STANDBY;
    case MemberRole::spare: return CATGA_ROLE_SPARE;
    default: return CATGA_ROLE_VOTER;
  }
}

inline MemberRole member_role(int role) {
  switch (role) {
    case CATGA_ROLE_STANDBY: return MemberRole::standby;
    case CATGA_ROLE_SPARE: return MemberRole::spare;
    default: return MemberRole::voter;
  }
}

inline Error node_stopped() { return Error(Code::unavailable, "node stopped"); }
// `failure`: why the node stopped itself ("" if it was stopped).
inline Error stopped(const std::string& failure) {
  return failure.empty() ? node_stopped() : node_stopped_itself(failure);
}
inline Error outcome_unknown() { return Error(Code::deadline_exceeded, "leadership lost; outcome unknown"); }

}  // namespace catga::internal::raft_node_common
