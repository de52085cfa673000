/* src/cluster/raft_append_guard.c — AppendEntries on the receiving side
 * (catga_raft_skip_snapshotted_entries, raft_c.h). */
#include "cluster/raft_c.h"

#include <raft.h>
#include <string.h>

/* libraft 0.22.1's follower looks an entry up in its in-memory log (the
 * "trail"), which after a snapshot holds only the entries after
 * `trail.offset` and the snapshot's own (index, term):
 *   - checkLogMatchingProperty (src/replication.c) finds no term for a
 *     previous entry at or below `offset` (other than the snapshot's own)
 *     and rejects: "missing previous entry";
 *   - with a previous index of 0 that check passes, and
 *     checkConflictingEntries finds no term for entry 1 either, takes it for
 *     a new entry and appends every entry of the message after the trail's
 *     last index (1..20 become offset+1..offset+20); replicationAppend then
 *     counts the entries to persist from the trail (offset+20 of them, not
 *     20) and persistEntries copies that many from the message's array of 20:
 *     past its end (a wild allocation, a crash, or garbage entries in the
 *     log).
 * A leader reaches a follower that way when its idea of the follower's log
 * fell behind the follower's own snapshot: the follower's answers were lost
 * while it kept applying and compacting, and the leader walks its probe back
 * one rejected index at a time down to 0 (its own log still reaching back
 * that far: the members take snapshots at different points).
 *
 * Every entry a snapshot covers was committed, and a leader whose term is not
 * below the follower's holds every committed entry, identical: the entries
 * of the message up to the follower's snapshot index are ones the follower
 * already has. The message is rewritten to start after that snapshot — its
 * previous entry is the snapshot's (index, term), which the follower always
 * finds — so the follower's answer reports its real match point and the
 * leader goes on from there. The end of the message (previous index plus
 * entries) stays where it was, or moves up to the snapshot's index when the
 * message ended before it. A message of a lower term is left alone (libraft
 * rejects it before looking at its entries), and so is any message while the
 * follower installs a snapshot (libraft ignores the entries then; the
 * follower's answer to the install, once it is written, reports its match
 * point). */
int catga_raft_skip_snapshotted_entries(void *raft, void *message) {
  struct raft *r = raft;
  struct raft_message *m = message;
  struct raft_append_entries *a;
  raft_index snapshot;
  raft_index skip;
  if (m->type != RAFT_APPEND_ENTRIES) {
    return 0;
  }
  a = &m->append_entries;
  snapshot = r->trail.snapshot.index;
  if (a->term < r->current_term || r->snapshot.installing) {
    return 0; /* rejected, or its entries ignored, before they are looked at */
  }
  if (a->prev_log_index >= snapshot || a->prev_log_index > r->trail.offset) {
    return 0; /* the follower has the previous entry (or none is needed) */
  }
  skip = snapshot - a->prev_log_index;
  if (skip >= a->n_entries) {
    /* Nothing new left: what libraft frees for a message with entries
     * (recvCb frees the array, the handler the batch all entries share). */
    if (a->n_entries > 0) {
      raft_free(a->entries[0].batch);
      raft_free(a->entries);
    }
    a->entries = NULL;
    a->n_entries = 0;
  } else {
    /* The array stays the one libraft frees; every entry keeps its batch. */
    memmove(a->entries, a->entries + skip,
            (size_t)(a->n_entries - skip) * sizeof *a->entries);
    a->n_entries -= (unsigned)skip;
  }
  a->prev_log_index = snapshot;
  a->prev_log_term = r->trail.snapshot.term;
  return 1;
}
