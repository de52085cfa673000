/* src/cluster/raft_address_book.c — the address this node dials for each
 * peer (raft_address_book.h). */
#include "cluster/raft_address_book.h"
#include "cluster/raft_handle.h"

#include <stdlib.h>
#include <string.h>

/* How this node reaches a peer is local knowledge (raft_c.h, address_book).
 * libraft sends to the address of the destination's configuration entry — or,
 * for an answer, to the address the requester announced in its handshake —
 * and its uv I/O keeps one outbound connection per id, replaced whenever the
 * address it is given changes. Substituting the book's address for every
 * message, before the I/O sees it, gives each listed peer one stable address
 * whatever the replicated configuration says; the transport underneath (TCP
 * or another) dials what it is given. */

void catga_address_book_clear(struct catga_address_book *book) {
  unsigned i;
  for (i = 0; i < book->n; i++) {
    free(book->addresses[i]);
  }
  free(book->addresses);
  free(book->ids);
  memset(book, 0, sizeof *book);
}

int catga_address_book_init(struct catga_address_book *book,
                            const struct catga_raft_member *members,
                            unsigned n) {
  unsigned i;
  if (n == 0) {
    return 0;
  }
  book->ids = calloc(n, sizeof *book->ids);
  book->addresses = calloc(n, sizeof *book->addresses);
  if (book->ids == NULL || book->addresses == NULL) {
    catga_address_book_clear(book);
    return RAFT_NOMEM;
  }
  for (i = 0; i < n; i++) {
    size_t len = strlen(members[i].address) + 1;
    book->addresses[i] = malloc(len);
    if (book->addresses[i] == NULL) {
      book->n = i;
      catga_address_book_clear(book);
      return RAFT_NOMEM;
    }
    memcpy(book->addresses[i], members[i].address, len);
    book->ids[i] = members[i].id;
  }
  book->n = n;
  return 0;
}

static const char *bookLookup(const struct catga_address_book *book,
                              raft_id id) {
  unsigned i;
  for (i = 0; i < book->n; i++) {
    if (book->ids[i] == id) {
      return book->addresses[i];
    }
  }
  return NULL;
}

/* A member the book does not list (added at runtime) is dialled at the
 * address of its configuration entry, less Catga's "/PEER" suffix
 * (member_address.hpp). The same destination gets the same string whether
 * libraft took it from the configuration or from the member's handshake, so
 * the uv I/O keeps its connection. */
static const char *dialAddress(const char *configured, char *buf,
                               size_t size) {
  const char *slash;
  size_t len;
  if (configured == NULL || (slash = strchr(configured, '/')) == NULL) {
    return NULL;
  }
  len = (size_t)(slash - configured);
  if (len >= size) {
    return NULL;
  }
  memcpy(buf, configured, len);
  buf[len] = '\0';
  return buf;
}

int catga_address_book_send(struct raft_io *io, struct raft_io_send *req,
                            const struct raft_message *message,
                            raft_io_send_cb cb) {
  catga_raft *h = catga_raft_of_io(io);
  const char *address = bookLookup(&h->book, message->server_id);
  char stripped[1024];
  struct raft_message local;
  if (address == NULL) {
    address = dialAddress(message->server_address, stripped, sizeof stripped);
  }
  if (address == NULL || (message->server_address != NULL &&
                          strcmp(address, message->server_address) == 0)) {
    return h->inner_send(io, req, message, cb);
  }
  /* The uv I/O encodes the message and copies the address before returning. */
  local = *message;
  local.server_address = address;
  return h->inner_send(io, req, &local, cb);
}
