/* tests/cluster/fixture_harness.h — libraft's raft/fixture.h behind a C API
 * that C++ tests can include (raft.h itself does not compile as C++). */
#ifndef CATGA_TESTS_CLUSTER_FIXTURE_HARNESS_H
#define CATGA_TESTS_CLUSTER_FIXTURE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct catga_fixture catga_fixture;

/* True (default): new fixtures pass received messages through
 * catga_raft_drop_unsafe_install, like RaftNode's node mode. */
extern bool catga_fixture_guard_installs;

/* A cluster of n servers (all voters), each using fsms[i] (a struct raft_fsm *
 * from RaftNode::fsm_for_test()). Bootstrapped and started; no leader yet. */
catga_fixture *catga_fixture_new(void **fsms, unsigned n, unsigned snapshot_threshold,
                                 unsigned snapshot_trailing);
/* Closes every raft instance (pending requests complete) and frees. */
void catga_fixture_close(catga_fixture *f);
void *catga_fixture_raft(catga_fixture *f, unsigned i); /* struct raft * */
void catga_fixture_elect(catga_fixture *f, unsigned i);
void catga_fixture_depose(catga_fixture *f);
unsigned catga_fixture_leader_index(catga_fixture *f); /* n if none */
void catga_fixture_step(catga_fixture *f);
bool catga_fixture_step_until_applied(catga_fixture *f, unsigned i, uint64_t index, unsigned max_msecs);
bool catga_fixture_step_until_has_leader(catga_fixture *f, unsigned max_msecs);
void catga_fixture_step_until_elapsed(catga_fixture *f, unsigned msecs);
void catga_fixture_kill(catga_fixture *f, unsigned i);
void catga_fixture_revive(catga_fixture *f, unsigned i);
/* Every disk operation of server i (appends, snapshot writes) takes msecs. */
void catga_fixture_set_disk_latency(catga_fixture *f, unsigned i, unsigned msecs);
void catga_fixture_disconnect(catga_fixture *f, unsigned i, unsigned j);
void catga_fixture_reconnect(catga_fixture *f, unsigned i, unsigned j);
/* One direction: messages from i to j are lost until desaturated. */
void catga_fixture_saturate(catga_fixture *f, unsigned i, unsigned j);
void catga_fixture_desaturate(catga_fixture *f, unsigned i, unsigned j);
uint64_t catga_fixture_last_applied(catga_fixture *f, unsigned i);
/* AppendEntries server i's guard made start after its own snapshot
 * (catga_raft_skip_snapshotted_entries; 0 when unguarded). */
unsigned long catga_fixture_skipped_appends(catga_fixture *f, unsigned i);
uint64_t catga_fixture_n_install_snapshot_recv(catga_fixture *f, unsigned i);
/* raft_apply of arbitrary bytes (zero-padded to a multiple of 8) on server i,
 * bypassing RaftNode: for unreadable-entry tests. */
int catga_fixture_apply_raw(catga_fixture *f, unsigned i, const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif
