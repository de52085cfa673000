/* src/cluster/raft_change_index.c — see raft_change_index.h. */
#include "cluster/raft_change_index.h"

#include <raft.h>

unsigned catga_raft_change_entry_first(struct raft_message *message) {
  struct raft_append_entries *a;
  unsigned i;
  unsigned cut;
  if (message->type != RAFT_APPEND_ENTRIES) {
    return 0;
  }
  a = &message->append_entries;
  for (i = 1; i < a->n_entries; i++) {
    if (a->entries[i].type == RAFT_CHANGE) {
      /* Every entry of a received message points into one batch, freed once
       * no entry libraft keeps refers to it (entries[0] stays): the entries
       * cut off need no freeing of their own, and the array stays the one
       * libraft frees. */
      cut = a->n_entries - i;
      a->n_entries = i;
      return cut;
    }
  }
  return 0;
}
