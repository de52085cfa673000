// The simulation runs of many seeds (tests/sim/simulation.hpp: the model,
// the fault schedule and the invariants checked after every step), and the
// known libraft bug that keeps disk faults off by default.
//
// Same seed, same run: on failure the seed, the parameters and the whole
// fault schedule are printed. Replay one seed (docs/testing.md):
//   CATGA_SIM_SEED=<seed> CATGA_SIM_NODES=<3|5> catga_sim_tests --gtest_filter=Simulation.Replay
// More seeds: CATGA_SIM_SEEDS=<count per cluster size> (default 1000);
// CATGA_SIM_KEEP_GOING=1 goes on past a failing seed (one line each).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "catga/logging.hpp"
#include "simulation.hpp"

namespace catga::internal::sim_test {
namespace {

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
}  // namespace catga::internal::sim_test
