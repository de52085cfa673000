// MemberAnnouncer: what this member writes into the log about itself and the
// others (announcement_table.hpp), and what it tells a peer's bootstrap guard
// (bootstrap_guard.hpp) — the decisions of ReplicatedNode's sweep, without
// its sending and retrying.
//
//   * Once caught up after start, the member announces its handlers and apply
//     formats — and, from apply format 2, its data directory's identity —
//     whenever the table does not hold exactly that.
//   * A leader withdraws the announcements of members no longer in the
//     configuration, and raises the apply format once every voter and standby
//     has announced one higher.
//
// Threading: next_record() on one thread at a time (the sweep);
// member_state() and current() from any thread once set_data_dir() has run.
#pragma once

#include <cstdint>
#include <string>

#include "catga/cluster.hpp"
#include "cluster/announcement_table.hpp"
#include "cluster/peer_protocol.hpp"

namespace catga::internal {

class ReplicatedStateMachine;

class MemberAnnouncer {
 public:
  MemberAnnouncer(const ReplicatedStateMachine& machine, std::uint64_t self);

  // The identity of this member's data directory (after its start).
  void set_data_dir(std::string identity) { data_dir_identity_ = std::move(identity); }
  // What this member announces now.
  Announcement current() const;
  // The envelope to append now, given this node's status — an announcement,
  // a withdrawal or a format raise — or "" when nothing is due.
  std::string next_record(const NodeStatus& s);
  // The answer to a peer's bootstrap guard: what this node knows of member `id`.
  peer::MemberState member_state(std::uint64_t id, const NodeStatus& s) const;

 private:
  const ReplicatedStateMachine& machine_;
  Announcement announcement_;  // without the data directory (current() adds it)
  std::string data_dir_identity_;
  std::uint64_t catch_up_to_ = 0;  // the commit index seen once a leader was known
};

}  // namespace catga::internal
