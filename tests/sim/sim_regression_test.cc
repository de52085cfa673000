// Regression tests of the simulation (tests/sim/simulation.hpp): seeds that
// once crashed libraft or broke an invariant, replayed to check that they
// still reach the path they found and pass through the guard that fixed it.
#include <gtest/gtest.h>

#include "catga/logging.hpp"
#include "simulation.hpp"

namespace catga::internal::sim_test {
namespace {

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

}  // namespace
}  // namespace catga::internal::sim_test
