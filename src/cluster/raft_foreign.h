/* src/cluster/raft_foreign.h — a member that bootstrapped alone and then hears
 * from another cluster that lists it (raft_c.c's receive guard).
 *
 * A node whose Raft configuration has only ever been {itself} (the entry at
 * index 1, its bootstrap, is the only configuration it ever had) is sent Raft
 * messages by nobody: a member added later is in its configuration before it
 * sends. A message from another server id then comes from a cluster that
 * lists this node as a member, one it never joined: in practice, this
 * node's data directory was emptied and it was started again with a
 * --cluster naming only itself, which bootstrapped a new cluster with the
 * same id. libraft would take that cluster's entries over its own where
 * (index, term) match (both start in term 1), and the two would differ for
 * good. The guard drops every such message and remembers the first; the
 * node then stops itself (raft_node.cc, on_after_io).
 * Loop thread only, like the rest of raft_c.h. */
#ifndef CATGA_SRC_CLUSTER_RAFT_FOREIGN_H
#define CATGA_SRC_CLUSTER_RAFT_FOREIGN_H

#include "cluster/raft_c.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 once such a message was dropped, with the sender's id, its term, this
 * node's term then, and the sender's address (truncated to address_len);
 * 0 otherwise. */
int catga_raft_foreign_sender(const catga_raft *h, uint64_t *id,
                              uint64_t *term, uint64_t *own_term,
                              char *address, size_t address_len);

#ifdef __cplusplus
}
#endif

#endif
