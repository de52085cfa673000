/* src/cluster/raft_snapshot_send.c — InstallSnapshot on the sending side
 * (raft_snapshot_send.h). */
#include "cluster/raft_snapshot_send.h"
#include "cluster/raft_handle.h"

#include <stdlib.h>
#include <string.h>

void catga_install_read_begin(struct catga_install_read *reading,
                              const struct raft_snapshot *snapshot) {
  reading->handing = true;
  reading->index = snapshot != NULL ? snapshot->index : 0;
  reading->term = snapshot != NULL ? snapshot->term : 0;
}

void catga_install_read_end(struct catga_install_read *reading) {
  memset(reading, 0, sizeof *reading);
}

/* Safe by construction: the message's data, configuration and last_index
 * all come from the snapshot read (legacyLoadSnapshotCb), so its term is
 * that snapshot's too — the metadata written with those bytes. A leader
 * that sends a newer snapshot than it decided to is libraft's own design
 * ("no guarantee about the index of the loaded snapshot"): the follower
 * answers that index and the leader's progress moves on from it. */
const struct raft_message *catga_install_names_its_snapshot(
    const struct catga_install_read *reading, const struct raft_message *message,
    struct raft_message *fixed) {
  if (message->type != RAFT_INSTALL_SNAPSHOT || !reading->handing ||
      reading->index == 0 ||
      message->install_snapshot.last_index != reading->index ||
      message->install_snapshot.last_term == reading->term) {
    return message;
  }
  *fixed = *message;
  fixed->install_snapshot.last_term = reading->term;
  return fixed;
}

/* One InstallSnapshot per follower and snapshot. libraft 0.22.1 aborts an
 * install whenever the follower has not answered since the leader's previous
 * tick (timeout.c, checkContactQuorum: while the other voters answer, the
 * "recent contact" window restarts at every heartbeat interval), and then
 * reads the whole snapshot into a new buffer and sends it again. A follower
 * cannot answer while it reads a large snapshot from the stream (the
 * heartbeats wait behind it), nor while it ignores a copy that arrives during
 * its install ("already taking or installing snapshot"): every copy caused
 * the next. A send is now refused while one of that snapshot to that
 * follower is on its way, and for libraft's install_snapshot_timeout after
 * one was written or after the follower last said that it is still
 * installing it (catga_snapshot_send_answered) — so an install longer than
 * the timeout gets no second copy (libraft frees the refused copy at once);
 * a failed send clears the way for the next. */
struct snapshotSend {
  struct raft_io_send inner; /* handed to the I/O in libraft's stead */
  struct raft_io_send *outer;
  raft_io_send_cb cb;
  catga_raft *h;
  raft_id id;
  raft_index index;
  bool in_flight;
  uint64_t written_at; /* uv_now once written, or when last heard installing */
  struct snapshotSend *next;
};

static void snapshotSendForget(catga_raft *h, struct snapshotSend *s) {
  struct snapshotSend **p = &h->snapshot_sends;
  while (*p != s) {
    p = &(*p)->next;
  }
  *p = s->next;
  free(s);
}

static void snapshotSent(struct raft_io_send *inner, int status) {
  struct snapshotSend *s = inner->data;
  struct raft_io_send *outer = s->outer;
  raft_io_send_cb cb = s->cb;
  s->in_flight = false;
  s->outer = NULL;
  if (status == 0) {
    s->written_at = uv_now(&s->h->loop);
  } else {
    snapshotSendForget(s->h, s);
  }
  cb(outer, status);
}

/* A new connection to `id`: a snapshot written to the previous one may have
 * been lost with it, so the next send goes through. */
void catga_snapshot_send_reconnected(catga_raft *h, raft_id id) {
  struct snapshotSend *s;
  for (s = h->snapshot_sends; s != NULL; s = s->next) {
    if (s->id == id && !s->in_flight) {
      snapshotSendForget(h, s);
      return;
    }
  }
}

void catga_snapshot_send_answered(catga_raft *h,
                                  const struct raft_message *message) {
  const struct raft_append_entries_result *result;
  struct snapshotSend *s;
  if (message->type != RAFT_APPEND_ENTRIES_RESULT) {
    return;
  }
  /* While a follower stores a snapshot, libraft 0.22.1 keeps its
   * last_stored at 0, and it answers the heartbeats anchored at that
   * snapshot's index with a success for index 0 (recv_append_entries.c);
   * once stored, or after a failed install, it answers otherwise. */
  result = &message->append_entries_result;
  if (result->rejected != 0 || result->last_log_index != 0) {
    return;
  }
  for (s = h->snapshot_sends; s != NULL; s = s->next) {
    if (s->id == message->server_id && !s->in_flight) {
      s->written_at = uv_now(&h->loop);
      return;
    }
  }
}

/* Whether `s` still stands for a copy the follower has or will have. */
static bool snapshotSendHolds(catga_raft *h, const struct snapshotSend *s) {
  return s->in_flight ||
         uv_now(&h->loop) - s->written_at < h->r->install_snapshot_timeout;
}

bool catga_snapshot_send_holds(catga_raft *h, raft_id id) {
  const struct snapshotSend *s;
  for (s = h->snapshot_sends; s != NULL; s = s->next) {
    if (s->id == id) {
      return snapshotSendHolds(h, s);
    }
  }
  return false;
}

int catga_snapshot_send(struct raft_io *io, struct raft_io_send *req,
                        const struct raft_message *message,
                        raft_io_send_cb cb) {
  catga_raft *h = catga_raft_of_io(io);
  struct snapshotSend *s;
  struct raft_message fixed;
  int rv;
  if (message->type != RAFT_INSTALL_SNAPSHOT) {
    return catga_address_book_send(io, req, message, cb);
  }
  /* catga_address_book_send and the uv I/O copy what they keep. */
  message = catga_install_names_its_snapshot(&h->install_read, message, &fixed);
  if (message == &fixed) {
    h->snapshot_terms_corrected++;
  }
  for (s = h->snapshot_sends; s != NULL; s = s->next) {
    if (s->id == message->server_id) {
      break;
    }
  }
  if (s != NULL) {
    if (s->in_flight || (s->index == message->install_snapshot.last_index &&
                         snapshotSendHolds(h, s))) {
      h->snapshot_sends_skipped++;
      return RAFT_BUSY;
    }
    snapshotSendForget(h, s);
  }
  s = malloc(sizeof *s);
  if (s == NULL) {
    return RAFT_NOMEM;
  }
  memset(s, 0, sizeof *s);
  s->inner.data = s;
  s->outer = req;
  s->cb = cb;
  s->h = h;
  s->id = message->server_id;
  s->index = message->install_snapshot.last_index;
  s->in_flight = true;
  rv = catga_address_book_send(io, &s->inner, message, snapshotSent);
  if (rv != 0) {
    free(s);
    return rv;
  }
  s->next = h->snapshot_sends;
  h->snapshot_sends = s;
  h->snapshots_sent++;
  return 0;
}

/* libraft reads the whole snapshot for every InstallSnapshot it sends, and
 * aborts and restarts an install on each stale rejection of a heartbeat
 * (progressMaybeDecrement), of which a follower that was away answers a
 * burst: the reads ran side by side, one buffer each. They now run one after
 * the other, so that a send refused by catga_snapshot_send frees its buffer
 * before the next read allocates one. (A failed read is no way out: libraft
 * 0.22.1 then closes an uninitialised configuration, legacyLoadSnapshotCb.) */
struct snapshotGet {
  struct raft_io_snapshot_get inner; /* handed to the I/O in libraft's stead */
  struct raft_io_snapshot_get *outer;
  raft_io_snapshot_get_cb cb;
  catga_raft *h;
  struct snapshotGet *next;
};

static void snapshotRead(struct raft_io_snapshot_get *inner,
                         struct raft_snapshot *snapshot, int status);

static void getNext(catga_raft *h) {
  while (h->snapshot_gets != NULL) {
    struct snapshotGet *g = h->snapshot_gets;
    /* The I/O refuses new requests once closing (an assertion). */
    int rv = h->closing ? RAFT_CANCELED
                        : h->inner_snapshot_get(&h->io, &g->inner, snapshotRead);
    if (rv == 0) {
      return;
    }
    /* What libraft does when its own call fails: forget the request. */
    h->snapshot_gets = g->next;
    raft_free(g->outer->data);
    free(g);
  }
}

static void snapshotRead(struct raft_io_snapshot_get *inner,
                         struct raft_snapshot *snapshot, int status) {
  struct snapshotGet *g = inner->data;
  catga_raft *h = g->h;
  h->snapshot_gets = g->next;
  catga_install_read_begin(&h->install_read, status == 0 ? snapshot : NULL);
  g->cb(g->outer, snapshot, status);
  catga_install_read_end(&h->install_read);
  free(g);
  getNext(h);
}

int catga_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb) {
  catga_raft *h = catga_raft_of_io(io);
  struct snapshotGet *g = malloc(sizeof *g);
  struct snapshotGet **tail = &h->snapshot_gets;
  bool idle = h->snapshot_gets == NULL;
  int rv;
  if (g == NULL) {
    return RAFT_NOMEM;
  }
  memset(&g->inner, 0, sizeof g->inner);
  g->inner.data = g;
  g->outer = req;
  g->cb = cb;
  g->h = h;
  g->next = NULL;
  if (idle) {
    rv = h->inner_snapshot_get(io, &g->inner, snapshotRead);
    if (rv != 0) {
      free(g);
      return rv;
    }
  }
  while (*tail != NULL) {
    tail = &(*tail)->next;
  }
  *tail = g;
  return 0;
}

void catga_snapshot_sends_free(catga_raft *h) {
  while (h->snapshot_sends != NULL) {
    snapshotSendForget(h, h->snapshot_sends);
  }
}
