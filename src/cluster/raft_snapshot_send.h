/* src/cluster/raft_snapshot_send.h — InstallSnapshot on the sending side.
 *
 * Part of the C door to libraft (raft_handle.h); loop thread only.
 * libraft 0.22.1 on a leader re-reads and re-sends a whole snapshot to a
 * follower every time it gives up on an install; these wrappers of the uv
 * I/O send one copy per follower and snapshot, and read snapshots one at a
 * time (raft_snapshot_send.c says why) — node mode. The guard that makes an
 * InstallSnapshot name the term of the snapshot it carries
 * (catga_install_read_*) serves node mode and the test fixture's I/O alike
 * (tests/support/fixture_guard.c), which is why it takes no handle. */
#ifndef CATGA_SRC_CLUSTER_RAFT_SNAPSHOT_SEND_H
#define CATGA_SRC_CLUSTER_RAFT_SNAPSHOT_SEND_H

#include "cluster/raft_c.h"

#include <raft.h>
#include <stdbool.h>

/* libraft 0.22.1 guard: an InstallSnapshot names the term of the snapshot
 * it carries. A leader builds the message when it decides to send
 * (replication.c, sendSnapshot: its latest snapshot's index X and term) and
 * then reads the snapshot through raft_io snapshot_get, which hands over the
 * latest snapshot on disk — a newer one Y when the leader finished writing
 * one meanwhile. legacyLoadSnapshotCb (legacy.c) then moves the message's
 * last_index to Y and keeps X's term: the follower installs Y's data as
 * "Y^term(X)", holds a committed entry Y of the wrong term, and the next
 * AppendEntries anchored at Y finds "conflicting terms" (-> shutdown, and
 * memory corruption inside libraft). libraft sends the message from inside
 * the snapshot_get callback; the I/O's snapshot_get wrapper brackets that
 * callback with catga_install_read_begin/_end, and its send wrapper passes
 * every message through catga_install_names_its_snapshot. */
struct catga_install_read {
  bool handing;     /* libraft's snapshot_get callback is running */
  raft_index index; /* the snapshot handed to it */
  raft_term term;
};
/* Right before libraft's snapshot_get callback runs with `snapshot` (NULL
 * when the read failed); the callback frees it, so its metadata is copied. */
void catga_install_read_begin(struct catga_install_read *reading,
                              const struct raft_snapshot *snapshot);
/* Right after that callback returned. */
void catga_install_read_end(struct catga_install_read *reading);
/* Every message a raft_io send is given, before the I/O sees it: an
 * InstallSnapshot sent from inside the callback that carries the snapshot
 * read (its last_index) under another term is copied into *fixed with that
 * snapshot's term, and *fixed is returned; otherwise `message` is. The I/O
 * must copy or encode the message before its send returns (the uv I/O and
 * libraft's fixture do). */
const struct raft_message *catga_install_names_its_snapshot(
    const struct catga_install_read *reading, const struct raft_message *message,
    struct raft_message *fixed);

/* The raft_io send of a node: refuses (RAFT_BUSY) an InstallSnapshot while
 * one of the same snapshot to the same follower stands; every message goes on
 * to catga_address_book_send. */
int catga_snapshot_send(struct raft_io *io, struct raft_io_send *req,
                        const struct raft_message *message,
                        raft_io_send_cb cb);
/* A message received (before libraft sees it): a follower's answer that says
 * it is still installing the snapshot sent to it keeps that send standing. */
void catga_snapshot_send_answered(catga_raft *h,
                                  const struct raft_message *message);
/* A new connection to `id`: the next InstallSnapshot to it goes through. */
void catga_snapshot_send_reconnected(catga_raft *h, raft_id id);
/* Whether an InstallSnapshot to `id` is being written, or was written (or
 * last said to be installing) less than install_snapshot_timeout ago: the
 * follower may still be reading or installing it. */
bool catga_snapshot_send_holds(catga_raft *h, raft_id id);
/* Frees the bookkeeping (catga_raft_free). */
void catga_snapshot_sends_free(catga_raft *h);
/* The raft_io snapshot_get of a node: one read at a time, in order. */
int catga_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb);

#endif /* CATGA_SRC_CLUSTER_RAFT_SNAPSHOT_SEND_H */
