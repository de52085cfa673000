// BootstrapGuard: a member whose data directory is empty and that starts
// without `join` asks its peers, before it bootstraps the configuration,
// whether it already joined this cluster (etcd's "member already
// bootstrapped" check; docs/operations.md, "Data directory rules").
//
// An empty directory looks like the first start of a new member, but it is
// also what a voter's wiped (or lost) disk looks like — and such a voter has
// forgotten its log and its vote: bootstrapping would let it help elect a
// leader that never had committed entries. Every member announces itself
// through the log once it has caught up (announcement_table.hpp), so the
// members that applied that announcement know it joined. The guard asks every
// other listed member over the peer channel (the `member` question,
// peer_protocol.hpp, authenticated like every peer connection) and judges the
// answers with judge_bootstrap() below:
//   * a peer holds this member's announcement: refuse, with the remove → wipe
//     → add procedure;
//   * the leader, ready and applied, does not hold it (a member listed from
//     the start that never came up): bootstrap;
//   * every peer answered and none has seen an election (term 1, or 0 for a
//     peer waiting in its own guard): a new cluster forming — bootstrap;
//   * a peer has seen an election but cannot tell yet (no leader, not caught
//     up): ask again until `settle_bound`, then refuse — better a member that
//     an operator restarts than one that votes with an empty log;
//   * some peer is silent and none that answered has seen an election: the
//     cluster is forming with members still to come, or every other member
//     is down and this voter's disk was wiped — the guard cannot tell them
//     apart. It keeps asking until `silent_bound`, then refuses, naming
//     `new_cluster` (--new-cluster); with `new_cluster` set it bootstraps
//     after `quiet_bound` and logs it.
//
// A question waits one election timeout for its answer at first and twice
// as long after each one the peer left unanswered (most_patience): members
// starting together on a loaded host (a build on the same cores, a paused
// VM) answer each other late, and a fixed bound of one election timeout
// once made all five members of a fresh cluster refuse at once, none ever
// having waited long enough for an answer.
//
// While it asks, the guard also answers: a member waiting in its own guard
// tells whoever asks that it knows nothing and has seen no election (term
// 0), so members started together on empty directories find each other and
// bootstrap without waiting for any bound.
//
// Threading: run_bootstrap_guard() blocks its caller (the node's start)
// while a peer channel asks and answers; judge_bootstrap() is pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "catga/cluster.hpp"
#include "catga/result.hpp"
#include "cluster/peer_protocol.hpp"

namespace catga::internal {

struct BootstrapBounds {
  // Some peer silent, none that answered has seen an election: with
  // new_cluster, bootstrap after this long.
  std::chrono::milliseconds quiet_bound{1000};
  // Some peer has seen an election but could not tell: refuse after this long.
  std::chrono::milliseconds settle_bound{5000};
  // Some peer silent, none that answered has seen an election: without
  // new_cluster, refuse after this long.
  std::chrono::milliseconds silent_bound{30000};
  // Bounds for a cluster with this election timeout: one election timeout
  // (at least 200 ms) of quiet, ten (at least 3 s) to settle, thirty (at
  // least 3 s) of silence.
  static BootstrapBounds for_election_timeout(std::chrono::milliseconds election_timeout);
  // The longest a question waits through silence (a quarter of
  // silent_bound, at least one election timeout). A question first waits one
  // election timeout; one a peer left unanswered is asked again with twice
  // the patience, up to this: a fixed wait shorter than a loaded peer's
  // answer time is never answered, however often it is asked.
  std::chrono::milliseconds most_patience(std::chrono::milliseconds election_timeout) const;
};

// The latest answer of each peer (by member id): its state, or why it could
// not be asked.
using PeerAnswers = std::map<std::uint64_t, Result<peer::MemberState>>;

struct BootstrapVerdict {
  enum Kind { bootstrap, refuse, ask_again } kind = ask_again;
  std::string why;  // for bootstrap: what to log; for refuse: the error message
};

// What a member `self` with an empty data directory (`data_dir`, for the
// message) does, given the answers so far, `peers` members asked in all,
// the time since the guard started, and whether the operator said this is a
// new cluster (ClusterOptions::new_cluster).
BootstrapVerdict judge_bootstrap(std::uint64_t self, const std::string& data_dir, std::size_t peers,
                                 const PeerAnswers& answers, std::chrono::milliseconds elapsed,
                                 const BootstrapBounds& bounds, bool new_cluster);

// Asks `peers` (member id → peer channel address, this member excluded)
// until judge_bootstrap() decides, answering on `listen_address` (this
// member's peer channel address) meanwhile: nothing when the node may
// bootstrap (the verdict is logged), else failed_precondition with the
// refusal.
Result<void> run_bootstrap_guard(const ClusterOptions& options, const std::string& listen_address,
                                 const std::map<std::uint64_t, std::string>& peers, const BootstrapBounds& bounds);

}  // namespace catga::internal
