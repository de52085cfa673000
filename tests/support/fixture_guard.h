/* tests/support/fixture_guard.h — puts libraft fixture servers behind the same
 * guards RaftNode's node mode applies to its I/O — on received messages
 * (catga_raft_drop_unsafe_install and the others, src/cluster/raft_c.h, and
 * catga_raft_change_entry_first, src/cluster/raft_change_index.h) and
 * on the InstallSnapshot a leader sends (catga_install_names_its_snapshot,
 * src/cluster/raft_snapshot_send.h) — so deterministic tests run the glue
 * real nodes run, and repairs a bug of the fixture's own
 * in-memory I/O (which real nodes never run). C, for the C fixture harnesses. */
#ifndef CATGA_TESTS_SUPPORT_FIXTURE_GUARD_H
#define CATGA_TESTS_SUPPORT_FIXTURE_GUARD_H

#include <raft.h>
#include <raft/fixture.h>

/* Before raft_fixture_start: wraps r->io's start so every message it receives
 * passes the guard first, its send and snapshot_get so every InstallSnapshot
 * names the term of the snapshot it carries, and repairs the fixture I/O's truncation after an
 * installed snapshot (libraft 0.22.1's ioMethodTruncate counts from index 1
 * and overruns its entry array; fixture_guard.c). At most 64 guarded servers
 * live at once. */
void catga_fixture_guard(struct raft *r);
/* How many AppendEntries r's guard rewrote to start after r's snapshot
 * (catga_raft_skip_snapshotted_entries, src/cluster/raft_c.h). */
unsigned long catga_fixture_guard_skipped_appends(const struct raft *r);
/* How many InstallSnapshot messages r's guard made to name the term of the
 * snapshot they carry (catga_install_names_its_snapshot,
 * src/cluster/raft_snapshot_send.h). */
unsigned long catga_fixture_guard_install_terms_fixed(const struct raft *r);
/* raft_fixture_close, then forgets its servers' guards (closing may still
 * deliver messages). Also right for a fixture only partly guarded. */
void catga_fixture_close_guarded(struct raft_fixture *fixture);

#endif
