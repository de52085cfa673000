/* src/cluster/raft_address_book.h — the address this node dials for each
 * peer (raft_c.h, catga_raft_config.address_book).
 *
 * Part of the C door to libraft (raft_handle.h); loop thread only. The book is
 * copied from the configuration when the node opens and never changes; its
 * send wrapper sits under raft_snapshot_send.c's, right above the uv I/O. */
#ifndef CATGA_SRC_CLUSTER_RAFT_ADDRESS_BOOK_H
#define CATGA_SRC_CLUSTER_RAFT_ADDRESS_BOOK_H

#include "cluster/raft_c.h"

#include <raft.h>

struct catga_address_book {
  unsigned n;
  raft_id *ids;
  char **addresses;
};

/* Copies `members` (id and address) into an empty book. 0 or RAFT_NOMEM (the
 * book is then empty). */
int catga_address_book_init(struct catga_address_book *book,
                            const struct catga_raft_member *members,
                            unsigned n);
/* Frees the copies; the book is empty afterwards (clearing twice is fine). */
void catga_address_book_clear(struct catga_address_book *book);
/* The raft_io send of a node (the handle's inner_send underneath): sends
 * `message` to the book's address for its destination. */
int catga_address_book_send(struct raft_io *io, struct raft_io_send *req,
                            const struct raft_message *message,
                            raft_io_send_cb cb);

#endif /* CATGA_SRC_CLUSTER_RAFT_ADDRESS_BOOK_H */
