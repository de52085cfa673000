/* src/cluster/raft_change_index.h — a configuration entry a follower
 * receives is the first entry of its AppendEntries message (libraft 0.22.1,
 * src/replication.c replicationAppend).
 *
 * Part of the C door to libraft (raft_handle.h); loop thread only. libraft
 * records every configuration entry of an AppendEntries message as
 * uncommitted at the index of the message's *first new entry*, not at its
 * own (`membershipUncommittedChange(r, index, entry)` in a loop over the new
 * entries that never adds the entry's position). When the configuration
 * entry is not the first new one, `configuration_uncommitted_index` names an
 * ordinary entry; applying the configuration entry
 * (replicationApplyConfigurationChange) finds no match and never clears it —
 * often within the same call, the follower applying what the leader already
 * committed. The node then holds a configuration change "uncommitted" for
 * good: as leader it refuses every change with RAFT_CANTCHANGE ("another
 * configuration change is in progress") until it restarts, and its
 * snapshots carry the configuration before that change (libraft writes the
 * last committed one). Seen in a chaos run (seed 1036358052): a leader
 * elected from a follower that had received the removal of a member behind
 * other entries refused to add the member back for a minute.
 *
 * Cutting the message short before such an entry keeps the fault away: the
 * follower takes the entries before it and answers with its last index; the
 * leader's next message (at the latest the next heartbeat, which the
 * follower rejects for its missing previous entry) starts with the
 * configuration entry, whose index libraft then records right. Costs one
 * round trip per configuration change a follower receives behind other
 * entries. */
#ifndef CATGA_SRC_CLUSTER_RAFT_CHANGE_INDEX_H
#define CATGA_SRC_CLUSTER_RAFT_CHANGE_INDEX_H

#include <raft.h>

/* Every received message, after any guard that rewrites its entries: an
 * AppendEntries message holding a configuration entry after its first entry
 * ends right before it. Returns the number of entries cut off. */
unsigned catga_raft_change_entry_first(struct raft_message *message);

#endif
