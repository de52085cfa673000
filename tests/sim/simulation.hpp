// tests/sim/simulation.hpp — the deterministic simulation of the RaftNode glue
// on libraft's in-memory fixture (virtual clock, no sockets, no threads; the
// test thread plays every loop thread), which sim_test.cc and
// sim_regression_test.cc run. For each seed: a 3- or 5-node cluster of real
// RaftNodes, each with a RecordStateMachine that keeps the sequence of
// (index, position, record) it applied, driven through a random schedule of
// proposals, crashes (kill/revive), partitions (disconnect), one-way message
// loss (saturate), disk faults, leadership transfers and clock advances. After
// EVERY fixture step the invariants are checked:
//   - at most one leader per term (ever);
//   - applied sequences never diverge: every node's sequence (including one
//     restored from a snapshot) is a prefix of one canonical sequence, and no
//     record appears in it twice;
//   - a record acknowledged to its proposer (success) is in the canonical
//     sequence at the acknowledged index, with the machine's result, and is on
//     every node that has applied that far;
//   - a proposal completed with `unavailable` or `invalid_argument` never
//     applies; `deadline_exceeded` may apply, at most once; every completion
//     runs exactly once;
//   - snapshots of one index, taken or installed, have one term; libraft
//     never shuts a node down.
// At the end the faults are healed and the cluster must make progress again
// and converge, with every acknowledged record on every node.
//
// Same seed, same run: on failure the seed, the parameters and the whole
// fault schedule are printed (Simulation::report). The Checker and the
// SequenceMachine live in sim_checker.cc, the Simulation in simulation.cc.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/raft_node.hpp"
#include "sim_cluster.h"

namespace catga::internal::sim_test {

struct Applied1 {
  std::uint64_t index = 0;
  std::uint32_t position = 0;
  std::string record;
  friend bool operator==(const Applied1&, const Applied1&) = default;
};

std::string describe(const Applied1& a);

// The truth every node is compared with, and the proposals' fates.
class Checker {
 public:
  struct Proposal {
    std::string record;
    unsigned node = 0;
    int completions = 0;
    std::optional<Code> code;
    std::uint64_t index = 0;
  };

  std::vector<std::string> failures;

  void fail(std::string what) { failures.push_back(std::move(what)); }

  // Node `node` applied `a` as the k-th record of its sequence.
  void on_apply(unsigned node, std::size_t k, const Applied1& a);

  std::size_t add_proposal(std::string record, unsigned node) {
    proposals_.push_back(Proposal{std::move(record), node, 0, std::nullopt, 0});
    return proposals_.size() - 1;
  }
  const Proposal& proposal(std::size_t id) const { return proposals_[id]; }
  std::size_t proposals() const { return proposals_.size(); }

  void on_complete(std::size_t id, const Result<internal::Applied>& r, std::size_t max_record);

  // The canonical position of the last acknowledged record at or below `index` (or none).
  std::optional<std::size_t> last_acked_through(std::uint64_t index) const;

  void saw_leader(unsigned node, std::uint64_t term);

  const std::vector<Applied1>& canonical() const { return canonical_; }
  std::optional<std::size_t> position_of(const std::string& record) const;

 private:
  const Proposal* proposal_of(const std::string& record) const;

  std::vector<Applied1> canonical_;
  std::unordered_map<std::string, std::size_t> pos_of_;
  std::map<std::uint64_t, std::size_t> acked_;  // index → canonical position of the last record acked there
  std::map<std::uint64_t, unsigned> leader_of_term_;
  std::vector<Proposal> proposals_;
};

// A RecordStateMachine that remembers what it applied; snapshots carry it all.
class SequenceMachine final : public RecordStateMachine {
 public:
  SequenceMachine(Checker& checker, unsigned node) : checker_(checker), node_(node) {}

  std::string apply(const ApplyInfo& info, std::string_view record) override;
  std::string snapshot() override;
  Result<void> restore(std::string_view s) override;

  const std::vector<Applied1>& sequence() const { return seq_; }
  int restores() const { return restores_; }

 private:
  Checker& checker_;
  unsigned node_;
  std::vector<Applied1> seq_;
  int restores_ = 0;
};

struct Params {
  std::uint64_t seed = 0;
  unsigned nodes = 3;
  int actions = 120;
  bool disk_faults = false;  // see kDiskFaultsDefault
  bool trace = false;        // print each action as it happens (for crashes)
  bool turns = true;         // the nodes know their members, so they take turns at snapshots
  std::string skip;          // actions never taken, e.g. "saturate,transfer" (narrowing a failure down)
};

struct Stats {
  std::uint64_t steps = 0;
  std::uint64_t acked = 0;
  std::uint64_t unknown = 0;
  std::uint64_t restores = 0;
  std::uint64_t install_terms_fixed = 0;
};

class Simulation {
 public:
  explicit Simulation(const Params& p) : p_(p), rng_(p.seed * 0x9E3779B97F4A7C15ull + p.nodes) {}

  ~Simulation() {
    if (cluster_ != nullptr) sim_cluster_close(cluster_);
    nodes_.clear();
  }

  enum class Outcome { passed, violated };

  // Runs the whole schedule; stops at the first violation (see report()).
  Outcome run(Stats& stats);

  std::string first_failure() const { return checker_.failures.empty() ? std::string() : checker_.failures.front(); }
  // Log truncations on a node after it had installed a snapshot (the path
  // tests/support/fixture_guard.c repairs in the fixture's I/O).
  int truncations_after_install() const { return truncations_after_install_; }
  // AppendEntries the nodes' guard rewrote to start after the follower's own
  // snapshot (catga_raft_skip_snapshotted_entries, src/cluster/raft_c.h).
  unsigned long skipped_appends() const { return skipped_appends_; }
  // InstallSnapshot messages a leader's guard made to name the term of the
  // snapshot they carry (catga_install_names_its_snapshot,
  // src/cluster/raft_snapshot_send.h).
  unsigned long install_terms_fixed() const { return install_terms_fixed_; }
  std::string replay_command() const;
  std::string report() const;

 private:
  bool ok() const { return checker_.failures.empty(); }

  static void on_trace(void* self, unsigned i, const char* message) {
    static_cast<Simulation*>(self)->trace(i, message);
  }
  void trace(unsigned i, const char* message);
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  bool chance(unsigned percent) { return pick(100) < percent; }
  bool skipped(const char* action) const { return ("," + p_.skip + ",").find(std::string(",") + action + ",") != std::string::npos; }

  void log(const std::string& what);
  void setup();
  void poll_and_check();
  void step();
  // Steps until `ms` of virtual time passed (bounded by a step budget).
  void elapse(std::uint64_t ms);
  template <class Pred>
  bool step_until(Pred pred, std::uint64_t max_ms);
  std::optional<unsigned> ready_leader() const;
  std::size_t propose(unsigned node);
  void act();
  void set_link(std::vector<std::vector<bool>>& links, bool on, const char* what, const char* arrow,
                void (*change)(sim_cluster*, unsigned, unsigned));
  void heal_and_converge();
  void note_snapshot(unsigned i, std::uint64_t index) {
    snapshot_index_[i] = std::max(snapshot_index_[i], index);
  }
  void final_checks();

  static constexpr std::size_t kEntryHeaderBytesForSim = 32 + 4;  // entry header + one length prefix

  Params p_;
  std::mt19937_64 rng_;
  Checker checker_;
  std::vector<std::unique_ptr<SequenceMachine>> machines_;
  std::vector<std::unique_ptr<RaftNode>> nodes_;
  sim_cluster* cluster_ = nullptr;
  std::size_t max_entry_bytes_ = 0;
  std::vector<bool> dead_;
  std::vector<std::vector<bool>> cut_, saturated_;
  std::vector<std::string> schedule_;
  std::string params_;
  std::uint64_t steps_ = 0;
  int transfers_started_ = 0;
  int transfers_completed_ = 0;
  bool converged_ = false;
  std::map<std::uint64_t, std::uint64_t> snapshot_term_;  // index → term of snapshots taken
  std::vector<bool> installed_;  // per node: has installed a snapshot from a leader
  std::vector<std::uint64_t> snapshot_index_;         // per node: its latest snapshot (taken or installed)
  int truncations_after_install_ = 0;
  unsigned long skipped_appends_ = 0;
  unsigned long install_terms_fixed_ = 0;
};

// The value of environment variable `name` as a number, or `fallback`.
std::uint64_t env_or(const char* name, std::uint64_t fallback);

// Disk faults (raft_fixture_io_fault) are off by default: a failed append on
// the leader double-frees the entry in src/cluster/raft_c.c catga_raft_apply
// (libraft's raft_apply already released it when replication failed after
// the append). CATGA_SIM_DISK_FAULTS=1 turns them on.
constexpr bool kDiskFaultsDefault = false;
// Leadership transfers are off by default, so the runs without them keep
// the schedules they always drew; the *WithLeadershipTransfers runs add them
// (docs/testing.md, "Known failing schedules"). CATGA_SIM_SKIP= (empty) runs
// every action.
constexpr const char* kDefaultSkip = "transfer";

// The parameters of one seed's run, from the arguments and the CATGA_SIM_*
// environment (CATGA_SIM_ACTIONS, _DISK_FAULTS, _TRACE, _TURNS, _SKIP).
Params params(std::uint64_t seed, unsigned nodes, const char* default_skip = kDefaultSkip, bool turns = true);

}  // namespace catga::internal::sim_test
