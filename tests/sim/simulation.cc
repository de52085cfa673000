// tests/sim/simulation.cc — the Simulation (simulation.hpp): it sets up a
// cluster of RaftNodes on libraft's fixture, draws and runs the fault
// schedule, checks the invariants after every step, heals and converges.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "simulation.hpp"

namespace catga::internal::sim_test {

Simulation::Outcome Simulation::run(Stats& stats) {
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

std::string Simulation::replay_command() const {
  return "CATGA_SIM_SEED=" + std::to_string(p_.seed) + " CATGA_SIM_NODES=" + std::to_string(p_.nodes) +
         " CATGA_SIM_ACTIONS=" + std::to_string(p_.actions) + " CATGA_SIM_DISK_FAULTS=" + (p_.disk_faults ? "1" : "0") +
         " CATGA_SIM_SKIP=" + p_.skip + " CATGA_SIM_TURNS=" + (p_.turns ? "1" : "0") + " catga_sim_tests --gtest_filter=Simulation.Replay";
}

std::string Simulation::report() const {
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

// Watches libraft's own trace. Violations: two snapshots of one index with
// different terms; a follower installing a snapshot whose (index, term)
// does not match the snapshot taken at that index (libraft 0.22.1 sends a
// newer snapshot than it decided to under the older one's term, which the
// leader's guard corrects: catga_install_names_its_snapshot — without it
// the follower holds a committed entry of the wrong term and libraft
// corrupts memory on the next AppendEntries, "conflicting terms ... ->
// shutdown"); and any shutdown.
void Simulation::trace(unsigned i, const char* message) {
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

void Simulation::log(const std::string& what) {
  schedule_.push_back("t=" + std::to_string(sim_time(cluster_)) + "ms step " + std::to_string(steps_) + ": " + what);
  if (p_.trace) std::fprintf(stderr, "  %s\n", schedule_.back().c_str());  // survives a crash
}

void Simulation::setup() {
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

void Simulation::poll_and_check() {
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

void Simulation::step() {
  sim_step(cluster_);
  ++steps_;
  poll_and_check();
}

void Simulation::elapse(std::uint64_t ms) {
  const std::uint64_t until = sim_time(cluster_) + ms;
  for (int i = 0; i < 20000 && ok() && sim_time(cluster_) < until; ++i) step();
}

template <class Pred>
bool Simulation::step_until(Pred pred, std::uint64_t max_ms) {
  const std::uint64_t until = sim_time(cluster_) + max_ms;
  for (int i = 0; i < 200000 && ok(); ++i) {
    if (pred()) return true;
    if (sim_time(cluster_) >= until) break;
    step();
  }
  return pred();
}

std::optional<unsigned> Simulation::ready_leader() const {
  for (unsigned i = 0; i < p_.nodes; ++i) {
    if (nodes_[i]->status().ready && !dead_[i]) return i;
  }
  return std::nullopt;
}

std::size_t Simulation::propose(unsigned node) {
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

void Simulation::act() {
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
void Simulation::set_link(std::vector<std::vector<bool>>& links, bool on, const char* what, const char* arrow,
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
void Simulation::heal_and_converge() {
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

void Simulation::final_checks() {
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

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

Params params(std::uint64_t seed, unsigned nodes, const char* default_skip, bool turns) {
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

}  // namespace catga::internal::sim_test
