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
//     up): ask again for `settle_bound` from the first answer that showed an
//     election, then refuse — better a member that an operator restarts than
//     one that votes with an empty log;
//   * some peer is silent and none that answered has seen an election: the
//     cluster is forming with members still to come, or every other member
//     is down and this voter's disk was wiped — the guard cannot tell them
//     apart. It keeps asking until `silent_bound`, then refuses, naming
//     `new_cluster` (--new-cluster); with `new_cluster` set it bootstraps
//     after `quiet_bound` and logs it.
//
// The bounds count the time this process ran while it asked (GuardClock), not
// the wall clock: a member stopped 900 of every 1000 ms (SIGSTOP, a paused VM,
// a container throttled by its CPU quota) had 450 ms of its own within a
// 4.5 s silence bound to hear four peers stalled alike, and all five members
// of a fresh cluster refused.
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

// Counted in time this process ran (GuardClock).
struct BootstrapBounds {
  // Some peer silent, none that answered has seen an election: with
  // new_cluster, bootstrap after this long.
  std::chrono::milliseconds quiet_bound{1000};
  // Some peer has seen an election but could not tell: refuse this long after
  // the first answer that showed one.
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

// The guard's clock: the time since it started, less the stretches in which
// this process did not run — stopped, throttled by a CPU quota, not given a
// core. A thread ticks every `tick`; a tick later than twice that marks what
// it lost beyond one tick as time not run, and so does the gap since the last
// tick when elapsed() is read (the reader may have run first after a stop).
// Counting less time only makes the guard ask longer: no verdict that
// bootstraps rests on the time alone except new_cluster's, which then waits
// longer too. Not thread-safe (run_bootstrap_guard locks it).
class GuardClock {
 public:
  using Clock = std::chrono::steady_clock;
  GuardClock(Clock::time_point start, Clock::duration tick) : start_(start), last_(start), tick_(tick) {}
  void tick(Clock::time_point now);
  // Time run since the start, as of `now`.
  std::chrono::milliseconds elapsed(Clock::time_point now) const;
  // Time not run since the start, as of `now`.
  Clock::duration not_run(Clock::time_point now) const;

 private:
  Clock::duration lost(Clock::time_point now) const;  // of the gap since the last tick
  Clock::time_point start_, last_;
  Clock::duration tick_;
  Clock::duration not_run_{};
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
// the time the guard has run (GuardClock) and, of it, the time since an
// answer first showed a peer that has seen an election (`settling`), and
// whether the operator said this is a new cluster (ClusterOptions::new_cluster).
BootstrapVerdict judge_bootstrap(std::uint64_t self, const std::string& data_dir, std::size_t peers,
                                 const PeerAnswers& answers, std::chrono::milliseconds elapsed,
                                 std::chrono::milliseconds settling, const BootstrapBounds& bounds, bool new_cluster);

// Asks `peers` (member id → peer channel address, this member excluded)
// until judge_bootstrap() decides, answering on `listen_address` (this
// member's peer channel address) meanwhile: nothing when the node may
// bootstrap (the verdict is logged), else failed_precondition with the
// refusal.
Result<void> run_bootstrap_guard(const ClusterOptions& options, const std::string& listen_address,
                                 const std::map<std::uint64_t, std::string>& peers, const BootstrapBounds& bounds);

}  // namespace catga::internal
