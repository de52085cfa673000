/* src/cluster/raft_install.h — InstallSnapshot on the receiving side.
 *
 * Part of the C door to libraft (raft_handle.h); loop thread only, node mode
 * (catga_raft_drop_unsafe_install, in raft_c.h, serves attached mode too).
 * Two libraft 0.22.1 behaviours are worked around here:
 *   - an InstallSnapshot that arrives while the follower installs or takes a
 *     snapshot is ignored or crashes the node: it is held instead and
 *     delivered once the follower can take it;
 *   - a snapshot from the leader was decoded inside fsm->restore on the loop
 *     thread: it is now decoded in libuv's thread pool while it is written.
 *
 * Who frees an InstallSnapshot's blocks (checked against libraft 0.22.1's
 * src/uv_recv.c, legacy.c, recv.c, recv_install_snapshot.c, replication.c;
 * tests RaftNode.HeldSnapshot*, EachHeldSnapshot*, NodeStopsWhile* under ASan):
 *   - uv_recv hands the configuration and the data to the receive callback
 *     and keeps neither; the sender's address stays the connection's (freed
 *     when it closes), so a held message owns a strdup of it;
 *   - held: the heap copy owns configuration, data and address; a newer one
 *     frees it whole (catga_install_free_held), as does the close;
 *   - delivered: catga_install_take_held clears the slot first, libraft
 *     takes configuration and data (its handlers free them when it is stale,
 *     from an old term, or while closing; the persist request keeps them
 *     otherwise, and frees them when the write is canceled; one it would
 *     ignore, "already installing", never reaches it), and the caller
 *     frees the address and the copy after libraft returns (libraft copies
 *     the address it keeps, and sends its answer before returning);
 *   - catga_raft_drop_unsafe_install (only when holding failed for lack of
 *     memory): frees configuration and data, as libraft's recvCb would;
 *   - a decode running on the pool reads the data libraft's persist request
 *     owns: the write's callback, which lets libraft free it, waits for the
 *     decode (installMaybeDone), also when the node closes meanwhile. */
#ifndef CATGA_SRC_CLUSTER_RAFT_INSTALL_H
#define CATGA_SRC_CLUSTER_RAFT_INSTALL_H

#include "cluster/raft_c.h"

#include <raft.h>
#include <stdbool.h>

/* Every received message first: true when `message` is an InstallSnapshot
 * the follower cannot take now; it is then held (replacing an older held
 * one) and the caller must not pass it on. */
bool catga_install_hold(catga_raft *h, struct raft_message *message);
/* Every loop iteration: the held InstallSnapshot once the follower can take
 * it (NULL otherwise). The caller delivers it as if just received, then
 * hands it to catga_install_release_held. */
struct raft_message *catga_install_take_held(catga_raft *h);
void catga_install_release_held(struct raft_message *m);
/* Raft closing: frees the held InstallSnapshot, if any. */
void catga_install_free_held(catga_raft *h);

/* Whether a snapshot_put is the write of a snapshot from the leader that
 * catga_install_put can decode while it is written. */
bool catga_install_is_leader_snapshot(const catga_raft *h,
                                      const struct raft_snapshot *snapshot);
/* The raft_io snapshot_put for such a snapshot: write and decode side by
 * side; `cb` runs once both are done. */
int catga_install_put(catga_raft *h, unsigned trailing,
                      struct raft_io_snapshot_put *req,
                      const struct raft_snapshot *snapshot,
                      raft_io_snapshot_put_cb cb);
/* Raft closing: true when a decode is still running — the I/O's close is
 * then called with `cb` once it is done; false: close now. */
bool catga_install_close_waits(catga_raft *h, raft_io_close_cb cb);

#endif /* CATGA_SRC_CLUSTER_RAFT_INSTALL_H */
