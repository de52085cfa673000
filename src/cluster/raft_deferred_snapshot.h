/* src/cluster/raft_deferred_snapshot.h — the snapshots a node takes itself.
 *
 * Part of the C door to libraft (raft_handle.h); loop thread only. The FSM's
 * snapshot and snapshot_finalize serve both modes; the rest is node mode.
 * libraft 0.22.1 takes a snapshot on the loop thread and writes it in one go;
 * when the FSM answers CATGA_SNAPSHOT_DEFERRED (its bytes are produced
 * elsewhere, see raft_c.h's "Deferred snapshots"), libraft gets a placeholder
 * buffer and its write is held back here until the bytes exist: the watched
 * descriptor says when, catga_raft_snapshot_written maps them in place of the
 * placeholder and starts the write. */
#ifndef CATGA_SRC_CLUSTER_RAFT_DEFERRED_SNAPSHOT_H
#define CATGA_SRC_CLUSTER_RAFT_DEFERRED_SNAPSHOT_H

#include "cluster/raft_c.h"

#include <raft.h>

/* fsm->snapshot: the state from callbacks.snapshot, or a placeholder when it
 * answers CATGA_SNAPSHOT_DEFERRED. */
int catga_deferred_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                unsigned *n_bufs);
/* fsm->snapshot_finalize: frees the buffers (unmaps a deferred snapshot's). */
int catga_deferred_fsm_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                unsigned *n_bufs);
/* The raft_io snapshot_put of a node: holds back the placeholder's write,
 * hands a snapshot from the leader to catga_install_put, passes the rest on. */
int catga_deferred_put(struct raft_io *io, unsigned trailing,
                       struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot,
                       raft_io_snapshot_put_cb cb);
/* Raft closing (the I/O's close, first): stops watching and completes a
 * held-back write as canceled — the only failure libraft 0.22.1 accepts for
 * it — after telling callbacks.snapshot_cancel. */
void catga_deferred_cancel(catga_raft *h);

#endif /* CATGA_SRC_CLUSTER_RAFT_DEFERRED_SNAPSHOT_H */
