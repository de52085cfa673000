// src/cluster/leader_changes.hpp — what a node counts as a change of leader
// (`leader_changes` in its status, `catga_leader_changes_total`).
//
// Threading: none of its own; RaftNode keeps one on its loop thread.
#pragma once

#include <cstdint>

namespace catga::internal {

// What `catga_leader_changes_total` counts: a leader other than the last
// one this node knew — another member, or the same one elected again in a
// later term. Learning the first leader after a start is not a change, and
// neither is losing sight of the leader and hearing from it again in the
// same term (a follower whose pre-vote failed: libraft forgets the leader
// while it asks, and the term does not move).
class LeaderChanges {
 public:
  // `leader_id` 0: no leader known now. True when this is a change.
  bool observe(std::uint64_t leader_id, std::uint64_t term) {
    if (leader_id == 0 || (leader_id == id_ && term == term_)) return false;
    const bool change = id_ != 0;
    id_ = leader_id;
    term_ = term;
    return change;
  }

 private:
  std::uint64_t id_ = 0;    // the last leader known (0: none yet)
  std::uint64_t term_ = 0;  // the term it was known in
};

}  // namespace catga::internal
