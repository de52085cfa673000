/* src/cluster/raft_snapshot_send.h — InstallSnapshot on the sending side.
 *
 * Part of the C door to libraft (raft_handle.h); loop thread only, node mode.
 * libraft 0.22.1 on a leader re-reads and re-sends a whole snapshot to a
 * follower every time it gives up on an install; these wrappers of the uv
 * I/O send one copy per follower and snapshot, and read snapshots one at a
 * time (raft_snapshot_send.c says why). */
#ifndef CATGA_SRC_CLUSTER_RAFT_SNAPSHOT_SEND_H
#define CATGA_SRC_CLUSTER_RAFT_SNAPSHOT_SEND_H

#include "cluster/raft_c.h"

#include <raft.h>

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
/* Frees the bookkeeping (catga_raft_free). */
void catga_snapshot_sends_free(catga_raft *h);
/* The raft_io snapshot_get of a node: one read at a time, in order. */
int catga_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb);

#endif /* CATGA_SRC_CLUSTER_RAFT_SNAPSHOT_SEND_H */
