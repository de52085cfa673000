// Deterministic simulation of the RaftNode glue on libraft's in-memory fixture
// (virtual clock, no sockets, no threads; the test thread plays every loop
// thread). For each seed: a 3- or 5-node cluster of real RaftNodes, each with
// a RecordStateMachine that keeps the sequence of (index, position, record)
// it applied, driven through a random schedule of proposals, crashes
// (kill/revive), partitions (disconnect), one-way message loss (saturate),
// disk faults, leadership transfers and clock advances. After EVERY fixture
// step the invariants are checked:
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
// fault schedule are printed. Replay one seed (docs/testing.md):
//   CATGA_SIM_SEED=<seed> CATGA_SIM_NODES=<3|5> catga_sim_tests --gtest_filter=Simulation.Replay
// More seeds: CATGA_SIM_SEEDS=<count per cluster size> (default 400);
// CATGA_SIM_KEEP_GOING=1 goes on past a failing seed (one line each).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "catga/logging.hpp"
#include "cluster/raft_node.hpp"
#include "sim_cluster.h"

namespace catga::internal {
namespace {

struct Applied1 {
  std::uint64_t index = 0;
  std::uint32_t position = 0;
  std::string record;
  friend bool operator==(const Applied1&, const Applied1&) = default;
};

std::string describe(const Applied1& a) {
  return "(index " + std::to_string(a.index) + ", position " + std::to_string(a.position) + ", \"" + a.record + "\")";
}

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
  void on_apply(unsigned node, std::size_t k, const Applied1& a) {
    if (k < canonical_.size()) {
      if (!(canonical_[k] == a)) {
        fail("node " + std::to_string(node + 1) + " applied " + describe(a) + " as record #" + std::to_string(k) +
             " but another node applied " + describe(canonical_[k]) + " there");
      }
      return;
    }
    if (k > canonical_.size()) {
      fail("node " + std::to_string(node + 1) + " has record #" + std::to_string(k) + " beyond the canonical sequence");
      return;
    }
    if (!canonical_.empty() && (a.index < canonical_.back().index ||
                                (a.index == canonical_.back().index && a.position <= canonical_.back().position))) {
      fail("record " + describe(a) + " applied after " + describe(canonical_.back()));
    }
    canonical_.push_back(a);
    if (!pos_of_.emplace(a.record, k).second) fail("record \"" + a.record + "\" applied twice");
    if (const Proposal* p = proposal_of(a.record); p != nullptr && p->code && (*p->code == Code::unavailable ||
                                                                              *p->code == Code::invalid_argument)) {
      fail("record \"" + a.record + "\" applied although its proposal completed with code " +
           std::to_string(static_cast<int>(*p->code)));
    }
  }

  std::size_t add_proposal(std::string record, unsigned node) {
    proposals_.push_back(Proposal{std::move(record), node, 0, std::nullopt, 0});
    return proposals_.size() - 1;
  }
  const Proposal& proposal(std::size_t id) const { return proposals_[id]; }
  std::size_t proposals() const { return proposals_.size(); }

  void on_complete(std::size_t id, const Result<internal::Applied>& r, std::size_t max_record) {
    Proposal& p = proposals_[id];
    if (++p.completions > 1) {
      fail("proposal \"" + p.record + "\" completed " + std::to_string(p.completions) + " times");
      return;
    }
    if (!r) {
      p.code = r.error().code();
      switch (r.error().code()) {
        case Code::unavailable:
        case Code::deadline_exceeded:
          break;
        case Code::invalid_argument:
          if (p.record.size() <= max_record) fail("proposal \"" + p.record + "\" refused: " + r.error().message());
          break;
        default:
          fail("proposal \"" + p.record + "\" failed with code " + std::to_string(static_cast<int>(r.error().code())) +
               ": " + r.error().message());
      }
      if (p.code != Code::deadline_exceeded && pos_of_.count(p.record) != 0) {
        fail("proposal \"" + p.record + "\" completed with code " + std::to_string(static_cast<int>(*p.code)) +
             " although it applied");
      }
      return;
    }
    p.code = Code::ok;
    p.index = r->index;
    if (r->result != "ok:" + p.record) fail("proposal \"" + p.record + "\" got result \"" + r->result + "\"");
    auto it = pos_of_.find(p.record);
    if (it == pos_of_.end()) {
      fail("proposal \"" + p.record + "\" acknowledged at index " + std::to_string(r->index) + " but never applied");
      return;
    }
    if (canonical_[it->second].index != r->index) {
      fail("proposal \"" + p.record + "\" acknowledged at index " + std::to_string(r->index) + " but applied at " +
           describe(canonical_[it->second]));
    }
    auto& pos = acked_[r->index];
    pos = std::max(pos, it->second);
  }

  // The canonical position of the last acknowledged record at or below `index` (or none).
  std::optional<std::size_t> last_acked_through(std::uint64_t index) const {
    auto it = acked_.upper_bound(index);
    if (it == acked_.begin()) return std::nullopt;
    return std::prev(it)->second;
  }

  void saw_leader(unsigned node, std::uint64_t term) {
    auto [it, fresh] = leader_of_term_.emplace(term, node);
    if (!fresh && it->second != node) {
      fail("two leaders in term " + std::to_string(term) + ": nodes " + std::to_string(it->second + 1) + " and " +
           std::to_string(node + 1));
    }
  }

  const std::vector<Applied1>& canonical() const { return canonical_; }
  std::optional<std::size_t> position_of(const std::string& record) const {
    auto it = pos_of_.find(record);
    if (it == pos_of_.end()) return std::nullopt;
    return it->second;
  }

 private:
  const Proposal* proposal_of(const std::string& record) const {
    // Records are "p<id>." followed by padding.
    if (record.size() < 2 || record[0] != 'p') return nullptr;
    const std::size_t id = std::strtoull(record.c_str() + 1, nullptr, 10);
    return id < proposals_.size() && proposals_[id].record == record ? &proposals_[id] : nullptr;
  }

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

  std::string apply(const ApplyInfo& info, std::string_view record) override {
    Applied1 a{info.index, info.position, std::string(record)};
    seq_.push_back(a);
    checker_.on_apply(node_, seq_.size() - 1, a);
    return "ok:" + a.record;
  }
  std::string snapshot() override {
    std::string out;
    for (const auto& a : seq_) {
      const std::uint32_t len = static_cast<std::uint32_t>(a.record.size());
      out.append(reinterpret_cast<const char*>(&a.index), 8);
      out.append(reinterpret_cast<const char*>(&a.position), 4);
      out.append(reinterpret_cast<const char*>(&len), 4);
      out.append(a.record);
    }
    return out;
  }
  Result<void> restore(std::string_view s) override {
    std::vector<Applied1> seq;
    while (!s.empty()) {
      Applied1 a;
      std::uint32_t len = 0;
      if (s.size() < 16) return Error(Code::data_loss, "truncated snapshot");
      std::memcpy(&a.index, s.data(), 8);
      std::memcpy(&a.position, s.data() + 8, 4);
      std::memcpy(&len, s.data() + 12, 4);
      s.remove_prefix(16);
      if (s.size() < len) return Error(Code::data_loss, "truncated snapshot");
      a.record.assign(s.substr(0, len));
      s.remove_prefix(len);
      seq.push_back(std::move(a));
    }
    seq_ = std::move(seq);
    ++restores_;
    for (std::size_t k = 0; k < seq_.size(); ++k) checker_.on_apply(node_, k, seq_[k]);
    return ok();
  }

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
  Outcome run(Stats& stats) {
    setup();
    for (int a = 0; a < p_.actions && ok(); ++a) act();
    if (ok()) heal_and_converge();
    if (ok()) final_checks();
    for (unsigned i = 0; i < p_.nodes; ++i) {
      skipped_appends_ += sim_skipped_appends(cluster_, i);
      install_terms_fixed_ += sim_install_terms_fixed(cluster_, i);
    }
    // Close: pending proposals complete (deadline_exceeded / unavailable), then every one exactly once.
    sim_cluster_close(cluster_);
    cluster_ = nullptr;
    nodes_.clear();
    for (std::size_t id = 0; id < checker_.proposals() && ok(); ++id) {
      if (checker_.proposal(id).completions != 1) {
        checker_.fail("proposal \"" + checker_.proposal(id).record + "\" completed " +
                      std::to_string(checker_.proposal(id).completions) + " times");
      }
    }
    if (transfers_started_ != transfers_completed_) {
      checker_.fail(std::to_string(transfers_started_) + " leadership transfers started, " +
                    std::to_string(transfers_completed_) + " completed");
    }
    stats.steps += steps_;
    for (std::size_t id = 0; id < checker_.proposals(); ++id) {
      const auto& code = checker_.proposal(id).code;
      if (code == Code::ok) ++stats.acked;
      if (code == Code::deadline_exceeded) ++stats.unknown;
    }
    for (auto& m : machines_) stats.restores += m->restores();
    stats.install_terms_fixed += install_terms_fixed_;
    return checker_.failures.empty() ? Outcome::passed : Outcome::violated;
  }

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
  std::string replay_command() const {
    return "CATGA_SIM_SEED=" + std::to_string(p_.seed) + " CATGA_SIM_NODES=" + std::to_string(p_.nodes) +
           " CATGA_SIM_ACTIONS=" + std::to_string(p_.actions) + " CATGA_SIM_DISK_FAULTS=" + (p_.disk_faults ? "1" : "0") +
           " CATGA_SIM_SKIP=" + p_.skip + " CATGA_SIM_TURNS=" + (p_.turns ? "1" : "0") + " catga_sim_tests --gtest_filter=Simulation.Replay";
  }

  std::string report() const {
    std::ostringstream out;
    out << "seed " << p_.seed << ", " << p_.nodes << " nodes, " << p_.actions << " actions, disk faults "
        << (p_.disk_faults ? "on" : "off") << ", turns " << (p_.turns ? "on" : "off") << "; " << params_ << "\n"
        << "replay: " << replay_command() << "\n";
    for (const auto& f : checker_.failures) out << "VIOLATION: " << f << "\n";
    out << "schedule (" << schedule_.size() << " actions, " << steps_ << " fixture steps):\n";
    for (const auto& s : schedule_) out << "  " << s << "\n";
    out << "applied records per node:";
    for (auto& m : machines_) out << " " << m->sequence().size();
    out << " (canonical " << checker_.canonical().size() << ")\n";
    out << "guards: " << skipped_appends_ << " AppendEntries started after a follower's snapshot, "
        << install_terms_fixed_ << " InstallSnapshot terms corrected\n";
    return out.str();
  }

 private:
  bool ok() const { return checker_.failures.empty(); }

  static void on_trace(void* self, unsigned i, const char* message) {
    static_cast<Simulation*>(self)->trace(i, message);
  }
  // Watches libraft's own trace. Violations: two snapshots of one index with
  // different terms; a follower installing a snapshot whose (index, term)
  // does not match the snapshot taken at that index (libraft 0.22.1 sends a
  // newer snapshot than it decided to under the older one's term, which the
  // leader's guard corrects: catga_install_names_its_snapshot — without it
  // the follower holds a committed entry of the wrong term and libraft
  // corrupts memory on the next AppendEntries, "conflicting terms ... ->
  // shutdown"); and any shutdown.
  void trace(unsigned i, const char* message) {
    unsigned long long index = 0, term = 0;
    const std::string node = "node " + std::to_string(i + 1);
    if (const char* p = std::strstr(message, "new snapshot (");
        p != nullptr && std::sscanf(p, "new snapshot (%llu^%llu)", &index, &term) == 2) {
      note_snapshot(i, index);
      auto [it, fresh] = snapshot_term_.emplace(index, term);
      if (!fresh && it->second != term) {
        checker_.fail(node + " took snapshot " + std::to_string(index) + "^" + std::to_string(term) +
                      " but another node's snapshot at that index has term " + std::to_string(it->second));
      }
    } else if (const char* q = std::strstr(message, "start persisting snapshot (");
               q != nullptr && std::sscanf(q, "start persisting snapshot (%llu^%llu)", &index, &term) == 2) {
      auto it = snapshot_term_.find(index);
      if (it != snapshot_term_.end() && it->second != term) {
        checker_.fail(node + " installs snapshot " + std::to_string(index) + "^" + std::to_string(term) +
                      " but the snapshot taken at index " + std::to_string(index) + " has term " +
                      std::to_string(it->second));
      }
    } else if (const char* r = std::strstr(message, "> persisted snapshot (");
               r != nullptr && std::sscanf(r, "> persisted snapshot (%llu^%llu)", &index, &term) == 2) {
      note_snapshot(i, index);
      installed_[i] = true;  // the fixture's I/O now counts its entries from this snapshot
    } else if (std::strstr(message, "-> truncate") != nullptr && installed_[i]) {
      ++truncations_after_install_;
    } else if (std::strstr(message, "-> shutdown") != nullptr) {
      checker_.fail(node + ": libraft: " + message);
    }
  }
  unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }
  bool chance(unsigned percent) { return pick(100) < percent; }
  bool skipped(const char* action) const { return ("," + p_.skip + ",").find(std::string(",") + action + ",") != std::string::npos; }

  void log(const std::string& what) {
    schedule_.push_back("t=" + std::to_string(sim_time(cluster_)) + "ms step " + std::to_string(steps_) + ": " + what);
    if (p_.trace) std::fprintf(stderr, "  %s\n", schedule_.back().c_str());  // survives a crash
  }

  void setup() {
    const std::size_t entry_bytes[] = {64, 128, 256, 1024};
    max_entry_bytes_ = entry_bytes[pick(4)];
    const unsigned in_flight = 1 + pick(8);
    const unsigned threshold = 4 + pick(60);
    const unsigned trailing = 1 + pick(threshold / 2 + 1);
    std::vector<unsigned> election_ms;
    std::vector<void*> fsms;
    for (unsigned i = 0; i < p_.nodes; ++i) {
      machines_.push_back(std::make_unique<SequenceMachine>(checker_, i));
      ClusterOptions o;
      o.node_id = i + 1;
      // As real nodes: the members take turns at snapshots (SnapshotSchedule).
      // The addresses are never dialled (the fixture carries the messages).
      for (unsigned k = 0; k < p_.nodes && p_.turns; ++k) {
        o.members.push_back(Member{.id = k + 1, .address = "127.0.0.1:" + std::to_string(9001 + k)});
      }
      o.max_entry_bytes = max_entry_bytes_;
      o.max_entries_in_flight = in_flight;
      o.snapshot_threshold = threshold;  // the node sets libraft's knobs from its options
      o.snapshot_trailing = trailing;
      nodes_.push_back(RaftNode::create_attached_for_test(o, *machines_.back()));
      fsms.push_back(nodes_.back()->fsm_for_test());
      election_ms.push_back(1000 + pick(1000));
    }
    installed_.assign(p_.nodes, false);
    snapshot_index_.assign(p_.nodes, 0);
    cluster_ = sim_cluster_new(fsms.data(), p_.nodes, threshold, trailing, election_ms.data(), &Simulation::on_trace, this);
    if (cluster_ == nullptr) {
      checker_.fail("sim_cluster_new failed");
      return;
    }
    for (unsigned i = 0; i < p_.nodes; ++i) {
      nodes_[i]->attach_for_test(sim_raft(cluster_, i));
      sim_network_latency(cluster_, i, 5 + pick(40));
      sim_disk_latency(cluster_, i, 2 + pick(20));
    }
    params_ = "max_entry_bytes " + std::to_string(max_entry_bytes_) + ", in_flight " + std::to_string(in_flight) +
              ", snapshot threshold " + std::to_string(threshold) + " trailing " + std::to_string(trailing);
    dead_.assign(p_.nodes, false);
    cut_.assign(p_.nodes, std::vector<bool>(p_.nodes, false));
    saturated_ = cut_;
    poll_and_check();
  }

  void poll_and_check() {
    // A killed node's process is stopped: its RaftNode does nothing until revived.
    for (unsigned i = 0; i < p_.nodes; ++i) {
      if (!dead_[i]) nodes_[i]->poll_for_test();
    }
    for (unsigned i = 0; i < p_.nodes; ++i) {
      if (sim_state(cluster_, i) == SIM_LEADER) checker_.saw_leader(i, sim_term(cluster_, i));
      // Everything acknowledged up to what this node applied is in its sequence.
      if (auto need = checker_.last_acked_through(sim_last_applied(cluster_, i));
          need && machines_[i]->sequence().size() <= *need) {
        checker_.fail("node " + std::to_string(i + 1) + " applied through index " +
                      std::to_string(sim_last_applied(cluster_, i)) + " but lacks acknowledged record " +
                      describe(checker_.canonical()[*need]));
      }
    }
  }

  void step() {
    sim_step(cluster_);
    ++steps_;
    poll_and_check();
  }
  // Steps until `ms` of virtual time passed (bounded by a step budget).
  void elapse(std::uint64_t ms) {
    const std::uint64_t until = sim_time(cluster_) + ms;
    for (int i = 0; i < 20000 && ok() && sim_time(cluster_) < until; ++i) step();
  }
  template <class Pred>
  bool step_until(Pred pred, std::uint64_t max_ms) {
    const std::uint64_t until = sim_time(cluster_) + max_ms;
    for (int i = 0; i < 200000 && ok(); ++i) {
      if (pred()) return true;
      if (sim_time(cluster_) >= until) break;
      step();
    }
    return pred();
  }

  std::optional<unsigned> ready_leader() const {
    for (unsigned i = 0; i < p_.nodes; ++i) {
      if (nodes_[i]->status().ready && !dead_[i]) return i;
    }
    return std::nullopt;
  }

  std::size_t propose(unsigned node) {
    std::string record = "p" + std::to_string(checker_.proposals()) + ".";
    // Mostly small, sometimes filling an entry, rarely too large for one.
    const unsigned r = pick(100);
    const std::size_t pad = r < 80 ? pick(24) : r < 97 ? pick(static_cast<unsigned>(max_entry_bytes_)) : max_entry_bytes_;
    record.append(pad, static_cast<char>('a' + pick(26)));
    const std::size_t id = checker_.add_proposal(record, node);
    const std::size_t max_record = max_entry_bytes_ - kEntryHeaderBytesForSim;
    nodes_[node]->propose(std::move(record), [this, id, max_record](Result<internal::Applied> r) {
      checker_.on_complete(id, r, max_record);
    });
    return id;
  }

  void act() {
    const unsigned n = p_.nodes;
    const unsigned r = pick(100);
    if (r < 30) {
      auto leader = ready_leader();
      const unsigned node = leader && chance(85) ? *leader : pick(n);
      if (dead_[node]) return;  // nothing to call on a stopped process
      const unsigned count = 1 + pick(4);
      log("propose " + std::to_string(count) + " on node " + std::to_string(node + 1));
      for (unsigned k = 0; k < count; ++k) propose(node);
      poll_and_check();
    } else if (r < 62) {
      const unsigned count = 1 + pick(30);
      log("step x" + std::to_string(count));
      for (unsigned k = 0; k < count && ok(); ++k) step();
    } else if (r < 70) {
      const unsigned ms = 50 + pick(1500);
      const unsigned i = pick(n), timeout = 1000 + pick(1000);
      sim_election_timeout(cluster_, i, timeout);  // randomized timeouts vary
      log("elapse " + std::to_string(ms) + "ms (node " + std::to_string(i + 1) + " election timeout now " +
          std::to_string(timeout) + "ms)");
      elapse(ms);
    } else if (r < 74) {
      const unsigned i = pick(n);
      if (dead_[i] || skipped("kill")) return;
      log("kill node " + std::to_string(i + 1));
      sim_kill(cluster_, i);
      dead_[i] = true;
      poll_and_check();
    } else if (r < 79) {
      const unsigned i = pick(n);
      if (!dead_[i]) return;
      log("revive node " + std::to_string(i + 1));
      sim_revive(cluster_, i);
      dead_[i] = false;
      poll_and_check();
    } else if (r < 83) {
      set_link(cut_, true, "disconnect", " <-> ", &sim_disconnect);
    } else if (r < 88) {
      set_link(cut_, false, "reconnect", " <-> ", &sim_reconnect);
    } else if (r < 90) {
      set_link(saturated_, true, "saturate", " -> ", &sim_saturate);
    } else if (r < 93) {
      set_link(saturated_, false, "desaturate", " -> ", &sim_desaturate);
    } else if (r < 95) {
      if (!p_.disk_faults || skipped("disk")) return;
      const unsigned i = pick(n);
      const int delay = static_cast<int>(pick(6)), repeat = 1 + static_cast<int>(pick(2));
      log("disk fault on node " + std::to_string(i + 1) + " after " + std::to_string(delay) + " requests, x" +
          std::to_string(repeat));
      sim_io_fault(cluster_, i, delay, repeat);
      poll_and_check();
    } else {
      auto leader = ready_leader();
      if (!leader || skipped("transfer")) return;
      const unsigned to = chance(30) ? 0 : 1 + pick(n);
      if (to == *leader + 1) return;
      log("transfer leadership from node " + std::to_string(*leader + 1) + " to " +
          (to == 0 ? std::string("any") : "node " + std::to_string(to)));
      ++transfers_started_;
      nodes_[*leader]->transfer_leadership(to, [this](Result<void>) { ++transfers_completed_; });
      poll_and_check();
    }
  }

  // Turns the link between two random nodes on or off (cut_ is symmetric:
  // sim_disconnect cuts both directions; saturated_ is one direction).
  void set_link(std::vector<std::vector<bool>>& links, bool on, const char* what, const char* arrow,
                void (*change)(sim_cluster*, unsigned, unsigned)) {
    const unsigned i = pick(p_.nodes), j = pick(p_.nodes);
    if (i == j || links[i][j] == on || (on && skipped(what))) return;
    log(std::string(what) + " " + std::to_string(i + 1) + arrow + std::to_string(j + 1));
    change(cluster_, i, j);
    links[i][j] = on;
    if (&links == &cut_) links[j][i] = on;
    poll_and_check();
  }

  // Heals every fault; the nodes libraft did not make unavailable must elect a
  // leader, commit a new record and all apply it.
  void heal_and_converge() {
    log("heal: revive all, reconnect all, desaturate all, no more disk faults");
    for (unsigned i = 0; i < p_.nodes; ++i) {
      if (dead_[i]) sim_revive(cluster_, i);
      dead_[i] = false;
      sim_io_fault(cluster_, i, -1, 0);
      for (unsigned j = 0; j < p_.nodes; ++j) {
        if (i == j) continue;
        if (cut_[i][j]) sim_reconnect(cluster_, i, j);
        if (saturated_[i][j]) sim_desaturate(cluster_, i, j);
        cut_[i][j] = saturated_[i][j] = false;
      }
    }
    poll_and_check();
    unsigned healthy = 0;
    for (unsigned i = 0; i < p_.nodes; ++i) healthy += sim_state(cluster_, i) != SIM_UNAVAILABLE;
    if (healthy <= p_.nodes / 2) {
      log("only " + std::to_string(healthy) + " nodes not unavailable after disk faults: no liveness check");
      return;
    }
    for (int attempt = 0; attempt < 20 && ok(); ++attempt) {
      // The fixture's "random" election timeouts are constants: draw new ones,
      // or identical timers can split the vote forever.
      for (unsigned i = 0; i < p_.nodes; ++i) sim_election_timeout(cluster_, i, 1000 + pick(1000));
      if (!step_until([&] { return ready_leader().has_value(); }, 10000)) continue;
      const unsigned leader = *ready_leader();
      log("final proposal on node " + std::to_string(leader + 1));
      const std::size_t id = propose(leader);
      poll_and_check();
      step_until([&] { return checker_.proposal(id).code.has_value(); }, 60000);
      if (checker_.proposal(id).code != Code::ok) {
        elapse(500);  // e.g. a leadership transfer in progress refuses proposals
        continue;
      }
      const std::string& record = checker_.proposal(id).record;
      const bool all = step_until(
          [&] {
            for (unsigned i = 0; i < p_.nodes; ++i) {
              if (sim_state(cluster_, i) == SIM_UNAVAILABLE) continue;
              const auto pos = checker_.position_of(record);
              if (!pos || machines_[i]->sequence().size() <= *pos) return false;
            }
            return true;
          },
          60000);
      if (!all && ok()) {
        checker_.fail("after healing, not every node applied the final record \"" + record + "\"");
      }
      converged_ = true;
      return;
    }
    if (ok()) checker_.fail("after healing, no record could be committed (20 attempts)");
  }

  void note_snapshot(unsigned i, std::uint64_t index) {
    snapshot_index_[i] = std::max(snapshot_index_[i], index);
  }
  void final_checks() {
    if (!converged_) return;
    for (unsigned i = 0; i < p_.nodes; ++i) {
      if (sim_state(cluster_, i) == SIM_UNAVAILABLE) continue;
      const auto& seq = machines_[i]->sequence();
      for (std::size_t id = 0; id < checker_.proposals(); ++id) {
        const auto& p = checker_.proposal(id);
        if (p.code != Code::ok) continue;
        const auto pos = checker_.position_of(p.record);
        if (!pos || *pos >= seq.size() || seq[*pos].record != p.record) {
          checker_.fail("acknowledged record \"" + p.record + "\" missing on node " + std::to_string(i + 1));
          return;
        }
      }
    }
  }

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

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

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

Params params(std::uint64_t seed, unsigned nodes, const char* default_skip = kDefaultSkip, bool turns = true) {
  Params p;
  p.seed = seed;
  p.nodes = nodes;
  p.actions = static_cast<int>(env_or("CATGA_SIM_ACTIONS", 120));
  p.disk_faults = env_or("CATGA_SIM_DISK_FAULTS", kDiskFaultsDefault ? 1 : 0) != 0;
  p.trace = env_or("CATGA_SIM_TRACE", 0) != 0;
  p.turns = env_or("CATGA_SIM_TURNS", turns ? 1 : 0) != 0;
  const char* skip = std::getenv("CATGA_SIM_SKIP");
  p.skip = skip != nullptr ? skip : default_skip;
  return p;
}

void run_seeds(unsigned nodes, std::uint64_t default_seeds, const char* default_skip = kDefaultSkip,
               bool turns = true) {
  set_log_level(LogLevel::off);
  const std::uint64_t first = env_or("CATGA_SIM_FIRST_SEED", 0);
  const std::uint64_t count = env_or("CATGA_SIM_SEEDS", default_seeds);
  const bool keep_going = env_or("CATGA_SIM_KEEP_GOING", 0) != 0;
  Stats stats;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    if (std::getenv("CATGA_SIM_TRACE") != nullptr) std::fprintf(stderr, "seed %llu\n", static_cast<unsigned long long>(seed));
    Simulation sim(params(seed, nodes, default_skip, turns));
    switch (sim.run(stats)) {
      case Simulation::Outcome::passed:
        // Rare (about one seed per thousand): listed, as seeds for regression tests.
        if (sim.install_terms_fixed() > 0) {
          std::printf("seed %llu: %lu InstallSnapshot term(s) corrected\n  replay: %s\n",
                      static_cast<unsigned long long>(seed), sim.install_terms_fixed(), sim.replay_command().c_str());
        }
        break;
      case Simulation::Outcome::violated:
        if (keep_going) {  // survey a range: one line per failing seed, the test still fails
          ADD_FAILURE() << "seed " << seed << ": " << sim.first_failure() << "\n  replay: " << sim.replay_command();
          break;
        }
        ADD_FAILURE() << sim.report();
        return;
    }
  }
  std::printf("%u nodes: %llu seeds, %llu fixture steps, %llu records acknowledged, %llu outcome-unknown, %llu "
              "snapshot restores, %llu InstallSnapshot terms corrected\n",
              nodes, static_cast<unsigned long long>(count), static_cast<unsigned long long>(stats.steps),
              static_cast<unsigned long long>(stats.acked), static_cast<unsigned long long>(stats.unknown),
              static_cast<unsigned long long>(stats.restores),
              static_cast<unsigned long long>(stats.install_terms_fixed));
}

// CI: 1000 seeds per cluster size, the members taking turns at snapshots as
// real nodes do; five nodes again with identical snapshot points (no turns).
TEST(Simulation, ThreeNodes) { run_seeds(3, 1000); }
TEST(Simulation, FiveNodes) { run_seeds(5, 1000); }
TEST(Simulation, FiveNodesWithoutTurns) { run_seeds(5, 1000, kDefaultSkip, /*turns=*/false); }
// With leadership transfers too (5-node seed 709 crashed there before the
// AppendEntries guard; docs/testing.md).
TEST(Simulation, ThreeNodesWithLeadershipTransfers) { run_seeds(3, 1000, ""); }
TEST(Simulation, FiveNodesWithLeadershipTransfers) { run_seeds(5, 1000, ""); }

// Open bug, src/cluster/raft_c.c catga_raft_apply: when raft_apply fails
// after appending the entry (its replication trigger fails: here a disk
// fault on the leader), libraft's logDiscard has already freed the buffer and
// catga_raft_apply frees it again. Expected to die until fixed; then this
// test fails: delete it and set kDiskFaultsDefault = true.
TEST(SimulationKnownBugs, DiskFaultOnLeaderCrashesInsideLibraft) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        set_log_level(LogLevel::off);
        Params p = params(0, 3);
        p.disk_faults = true;
        p.skip = kDefaultSkip;
        p.actions = 120;
        Simulation sim(p);
        Stats stats;
        (void)sim.run(stats);
      },
      "")
      << "seed 0 with disk faults no longer crashes: the libraft null dereference in raft_fixture_step after a "
         "failed raft_apply is gone — delete this test and turn disk faults on by default (kDiskFaultsDefault)";
}

// Seed 955 (3 nodes), with the members taking turns at snapshots: node 3
// installs the leader's early snapshot 11^2, appends entries after it, and
// later truncates its log at 44 when a new leader's entries conflict. libraft
// 0.22.1's fixture I/O truncated as if its entry array began at index 1 —
// kept 43 entries of 34, copying past the array (ASan: heap-buffer-overflow
// in ioMethodTruncate; without ASan a garbage pointer freed in
// raft_fixture_close). tests/support/fixture_guard.c repairs the fixture;
// this replays the seed and checks it still reaches that truncation.
TEST(SimulationRegressions, Seed955TruncatesTheLogAfterAnInstalledSnapshot) {
  set_log_level(LogLevel::off);
  Simulation sim(params(955, 3));
  Stats stats;
  EXPECT_EQ(sim.run(stats), Simulation::Outcome::passed) << sim.report();
  EXPECT_GE(sim.truncations_after_install(), 1)
      << "seed 955 no longer truncates a log after an install: pick a seed that does (CATGA_SIM_TRACE=1, "
         "LIBRAFT_TRACE=1: \"persisted snapshot\" then \"-> truncate\" on one node)";
}

// Seed 171 (5 nodes), with the members taking turns at snapshots: a
// follower's answers are lost for a while as it keeps applying and taking
// snapshots of its own; the leader then probes an entry the follower's
// snapshot covers. libraft 0.22.1 rejects it, walks the leader back to its
// older snapshot, dismisses that as "have more recent snapshot" and echoes
// the older index, so the leader probes the same entry again, forever. The
// guard (catga_raft_answer_stale_install, raft_c.h) makes such an install
// name the follower's own snapshot: it answers its real match point and the
// leader goes on from there. Without it this seed never converges.
TEST(SimulationRegressions, Seed171AFollowerAheadOfTheLeadersSnapshotCatchesUp) {
  set_log_level(LogLevel::off);
  Simulation sim(params(171, 5));
  Stats stats;
  EXPECT_EQ(sim.run(stats), Simulation::Outcome::passed) << sim.report();
}

// Seeds 337, 647 and 928 (5 nodes), with the members taking turns at
// snapshots: a follower's answers to the leader are lost (a one-way loss, or
// a kill while its acknowledgement was in flight) while it keeps receiving,
// applying and compacting: it takes a snapshot whose trailing entries no
// longer reach back to the entry the leader probes with. When its answers
// flow again it rejects that probe ("missing previous entry"), the leader —
// whose own log, snapshotted at a later point, still starts at index 1 —
// walks the probe back to index 0, and libraft 0.22.1 then appends the
// leader's entries after the follower's last one and copies that many more
// from the message's array (seed 337: 32 for 20): past its end, a wild
// allocation and a crash. The guard (catga_raft_skip_snapshotted_entries,
// raft_c.h; real nodes and the fixture guard alike) makes such a message
// start after the follower's snapshot. Each seed crashes without it, and
// must reach the guard and pass with it.
// Runs `p`, which must pass, and requires the guard counted by `acted` to
// have acted (else the seed no longer reaches the bug: `lost` says how to
// find another).
void expect_passes_through_the_guard(const Params& p, unsigned long (Simulation::*acted)() const, const char* lost) {
  set_log_level(LogLevel::off);
  Simulation sim(p);
  Stats stats;
  EXPECT_EQ(sim.run(stats), Simulation::Outcome::passed) << sim.report();
  EXPECT_GE((sim.*acted)(), 1u) << "seed " << p.seed << " no longer " << lost;
}
void expect_the_guard_skips_snapshotted_entries(std::uint64_t seed) {
  expect_passes_through_the_guard(params(seed, 5), &Simulation::skipped_appends,
                                  "sends a follower entries its snapshot covers: pick a seed that does (LIBRAFT_TRACE=1: "
                                  "\"missing previous entry\" on a follower after \"new snapshot\")");
}
TEST(SimulationRegressions, Seed337AFollowerWhoseAnswersWereLostTakesEntriesAfterItsSnapshot) {
  expect_the_guard_skips_snapshotted_entries(337);
}
TEST(SimulationRegressions, Seed647AFollowerKilledBeforeItsAckTakesEntriesAfterItsSnapshot) {
  expect_the_guard_skips_snapshotted_entries(647);
}
TEST(SimulationRegressions, Seed928AFollowerKeepingOneTrailingEntryTakesEntriesAfterItsSnapshot) {
  expect_the_guard_skips_snapshotted_entries(928);
}

// Seeds 668 (5 nodes), 756 (5 nodes, no turns) and 860 (3 nodes, with
// leadership transfers): a new leader decides to send a follower its latest
// snapshot (668: 12^2, taken in the previous term), and before the fixture's
// disk hands the snapshot over it takes a newer one (24^3). libraft 0.22.1
// (legacyLoadSnapshotCb) then sends the newer snapshot's data and index
// under the older one's term, and the follower persisted "24^2": a committed
// entry of the wrong term, which the next AppendEntries at 24 finds as
// "conflicting terms ... -> shutdown" with memory corrupted. The leader's
// guard (catga_install_names_its_snapshot, src/cluster/raft_snapshot_send.h;
// real nodes and the fixture guard alike) sends it as 24^3. Each seed is a
// violation without the guard, and must reach the guard and pass with it.
void expect_the_install_names_its_snapshot(std::uint64_t seed, unsigned nodes, const char* skip, bool turns) {
  expect_passes_through_the_guard(params(seed, nodes, skip, turns), &Simulation::install_terms_fixed,
                                  "sends a snapshot newer than the leader decided to: pick a seed that does (the "
                                  "Simulation.* runs list them: \"InstallSnapshot term(s) corrected\")");
}
TEST(SimulationRegressions, Seed668AnInstallSnapshotNamesTheTermOfTheSnapshotItCarries) {
  expect_the_install_names_its_snapshot(668, 5, kDefaultSkip, /*turns=*/true);
}
TEST(SimulationRegressions, Seed756WithoutTurnsAnInstallSnapshotNamesTheTermOfTheSnapshotItCarries) {
  expect_the_install_names_its_snapshot(756, 5, kDefaultSkip, /*turns=*/false);
}
TEST(SimulationRegressions, Seed860WithTransfersAnInstallSnapshotNamesTheTermOfTheSnapshotItCarries) {
  expect_the_install_names_its_snapshot(860, 3, "", /*turns=*/true);
}

// Replays one seed and prints its schedule: CATGA_SIM_SEED=<seed> CATGA_SIM_NODES=<n>.
TEST(Simulation, Replay) {
  if (std::getenv("CATGA_SIM_SEED") == nullptr) GTEST_SKIP() << "set CATGA_SIM_SEED (and CATGA_SIM_NODES) to replay";
  set_log_level(std::getenv("CATGA_SIM_LOG") != nullptr ? LogLevel::debug : LogLevel::off);
  Simulation sim(params(env_or("CATGA_SIM_SEED", 0), static_cast<unsigned>(env_or("CATGA_SIM_NODES", 3))));
  Stats stats;
  const auto outcome = sim.run(stats);
  std::printf("%s", sim.report().c_str());
  EXPECT_EQ(outcome, Simulation::Outcome::passed);
}

}  // namespace
}  // namespace catga::internal
