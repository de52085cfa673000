/* tests/sim/sim_cluster.h — libraft's deterministic in-memory cluster
 * (raft/fixture.h, virtual clock) behind a C API the C++ simulation can
 * include (raft.h does not compile as C++). Every function is a thin wrapper;
 * the fault schedule and the checks live in simulation.cc and sim_checker.cc. */
#ifndef CATGA_TESTS_SIM_SIM_CLUSTER_H
#define CATGA_TESTS_SIM_SIM_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sim_cluster sim_cluster;

/* raft_state() values. */
enum { SIM_UNAVAILABLE = 0, SIM_FOLLOWER = 1, SIM_CANDIDATE = 2, SIM_LEADER = 3 };

/* Receives libraft's diagnostic trace messages of server i (also printed to
 * stderr when LIBRAFT_TRACE is set). */
typedef void (*sim_trace_cb)(void *ctx, unsigned i, const char *message);

/* n voters (at most 8), server i using fsms[i] (RaftNode::fsm_for_test())
 * and the randomized election timeout election_ms[i]. Bootstrapped, started,
 * no leader yet. NULL on failure. */
sim_cluster *sim_cluster_new(void **fsms, unsigned n, unsigned snapshot_threshold, unsigned snapshot_trailing,
                             const unsigned *election_ms, sim_trace_cb trace, void *trace_ctx);
/* Closes every raft instance (pending requests complete) and frees. */
void sim_cluster_close(sim_cluster *c);

void *sim_raft(sim_cluster *c, unsigned i); /* struct raft * */
/* One fixture event (message, disk write or tick), the clock advancing to it. */
void sim_step(sim_cluster *c);
uint64_t sim_time(sim_cluster *c); /* virtual ms */

int sim_state(sim_cluster *c, unsigned i);
uint64_t sim_term(sim_cluster *c, unsigned i);
uint64_t sim_last_applied(sim_cluster *c, unsigned i);
bool sim_alive(sim_cluster *c, unsigned i);
/* AppendEntries server i's guard rewrote to start after its own snapshot
 * (catga_raft_skip_snapshotted_entries). */
unsigned long sim_skipped_appends(sim_cluster *c, unsigned i);
/* InstallSnapshot messages server i's guard made to name the term of the
 * snapshot they carry (catga_install_names_its_snapshot). */
unsigned long sim_install_terms_fixed(sim_cluster *c, unsigned i);

void sim_kill(sim_cluster *c, unsigned i);
void sim_revive(sim_cluster *c, unsigned i);
/* Both directions. */
void sim_disconnect(sim_cluster *c, unsigned i, unsigned j);
void sim_reconnect(sim_cluster *c, unsigned i, unsigned j);
/* One direction: messages from i to j are silently dropped. */
void sim_saturate(sim_cluster *c, unsigned i, unsigned j);
void sim_desaturate(sim_cluster *c, unsigned i, unsigned j);
/* The next `repeat` I/O requests of server i after `delay` more fail. */
void sim_io_fault(sim_cluster *c, unsigned i, int delay, int repeat);
void sim_network_latency(sim_cluster *c, unsigned i, unsigned msecs);
void sim_disk_latency(sim_cluster *c, unsigned i, unsigned msecs);
/* What server i's next election timer reset draws as its randomized timeout
 * (the fixture's "random" is a constant per server until changed). */
void sim_election_timeout(sim_cluster *c, unsigned i, unsigned msecs);

#ifdef __cplusplus
}
#endif

#endif
