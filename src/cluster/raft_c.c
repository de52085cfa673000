/* src/cluster/raft_c.c — every libraft call of Catga (see raft_c.h). */
#include "cluster/raft_c.h"
#include "cluster/raft_auth.h"

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

_Static_assert((int)CATGA_RAFT_NOMEM == (int)RAFT_NOMEM, "code");
_Static_assert((int)CATGA_RAFT_BADID == (int)RAFT_BADID, "code");
_Static_assert((int)CATGA_RAFT_DUPLICATEID == (int)RAFT_DUPLICATEID, "code");
_Static_assert((int)CATGA_RAFT_DUPLICATEADDRESS == (int)RAFT_DUPLICATEADDRESS, "code");
_Static_assert((int)CATGA_RAFT_BADROLE == (int)RAFT_BADROLE, "code");
_Static_assert((int)CATGA_RAFT_MALFORMED == (int)RAFT_MALFORMED, "code");
_Static_assert((int)CATGA_RAFT_NOTLEADER == (int)RAFT_NOTLEADER, "code");
_Static_assert((int)CATGA_RAFT_LEADERSHIPLOST == (int)RAFT_LEADERSHIPLOST, "code");
_Static_assert((int)CATGA_RAFT_SHUTDOWN == (int)RAFT_SHUTDOWN, "code");
_Static_assert((int)CATGA_RAFT_CANTBOOTSTRAP == (int)RAFT_CANTBOOTSTRAP, "code");
_Static_assert((int)CATGA_RAFT_CANTCHANGE == (int)RAFT_CANTCHANGE, "code");
_Static_assert((int)CATGA_RAFT_CORRUPT == (int)RAFT_CORRUPT, "code");
_Static_assert((int)CATGA_RAFT_CANCELED == (int)RAFT_CANCELED, "code");
_Static_assert((int)CATGA_RAFT_NAMETOOLONG == (int)RAFT_NAMETOOLONG, "code");
_Static_assert((int)CATGA_RAFT_TOOBIG == (int)RAFT_TOOBIG, "code");
_Static_assert((int)CATGA_RAFT_NOCONNECTION == (int)RAFT_NOCONNECTION, "code");
_Static_assert((int)CATGA_RAFT_BUSY == (int)RAFT_BUSY, "code");
_Static_assert((int)CATGA_RAFT_IOERR == (int)RAFT_IOERR, "code");
_Static_assert((int)CATGA_RAFT_NOTFOUND == (int)RAFT_NOTFOUND, "code");
_Static_assert((int)CATGA_RAFT_INVALID == (int)RAFT_INVALID, "code");
_Static_assert((int)CATGA_RAFT_UNAUTHORIZED == (int)RAFT_UNAUTHORIZED, "code");
_Static_assert((int)CATGA_RAFT_NOSPACE == (int)RAFT_NOSPACE, "code");

struct catga_raft {
  struct catga_raft_callbacks cb;
  struct raft_fsm fsm;
  struct raft *r; /* &raft in node mode, borrowed in attached mode */

  bool node_mode;
  bool closing;
  bool disk_failed; /* disk_failed callback already called */
  bool authenticated; /* the transport is raft_auth.c's */
  uv_loop_t loop;
  uv_async_t async;
  uv_check_t check;
  struct raft_io io;
  struct raft_uv_transport transport;
  /* The transport's own listen/connect, wrapped to set TCP_NODELAY. */
  int (*inner_listen)(struct raft_uv_transport *, raft_uv_accept_cb);
  int (*inner_connect)(struct raft_uv_transport *, struct raft_uv_connect *,
                       raft_id, const char *, raft_uv_connect_cb);
  raft_uv_accept_cb accept_cb;
  /* The I/O's own start, wrapped so received messages pass the guard. */
  int (*inner_start)(struct raft_io *, unsigned, raft_io_tick_cb,
                     raft_io_recv_cb);
  raft_io_recv_cb inner_recv;
  /* The I/O's own send, wrapped to take addresses from the address book. */
  int (*inner_send)(struct raft_io *, struct raft_io_send *,
                    const struct raft_message *, raft_io_send_cb);
  struct {
    unsigned n;
    raft_id *ids;
    char **addresses;
  } book;
  /* The I/O's own snapshot_put and close, wrapped for deferred snapshots. */
  int (*inner_snapshot_put)(struct raft_io *, unsigned,
                            struct raft_io_snapshot_put *,
                            const struct raft_snapshot *,
                            raft_io_snapshot_put_cb);
  void (*inner_close)(struct raft_io *, raft_io_close_cb);
  /* A deferred snapshot (see raft_c.h): the placeholder the FSM handed
   * libraft, its held-back write, the watched descriptor, and the mapping
   * that replaced the placeholder. */
  void *placeholder;
  struct {
    bool held;
    unsigned trailing;
    struct raft_io_snapshot_put *req;
    const struct raft_snapshot *snapshot;
    raft_io_snapshot_put_cb cb;
  } put;
  uv_poll_t *poll;
  struct {
    void *base;
    size_t len;
    int fd;
  } mapped;
  /* A snapshot installed from the leader (installPut): its write and its
   * decode (callbacks.restore_prepare, in libuv's thread pool) run side by
   * side, and libraft hears that the write is done only once both are, so
   * the buffer the decode reads stays alive and fsm->restore finds the state
   * decoded. raft_close meanwhile waits (close_cb) for the decode. */
  struct {
    bool busy;
    bool written;
    bool decoded;
    int status;
    struct raft_io_snapshot_put put; /* handed to the I/O in libraft's stead */
    struct raft_io_snapshot_put *req;
    raft_io_snapshot_put_cb cb;
    const void *base;
    size_t len;
    uv_work_t work;
    raft_io_close_cb close_cb;
  } install;
  /* InstallSnapshot messages on their way to a follower (sendSnapshotOnce),
   * and the reads of the snapshot for them, one at a time (getInTurn). */
  struct snapshotSend *snapshot_sends;
  int (*inner_snapshot_get)(struct raft_io *, struct raft_io_snapshot_get *,
                            raft_io_snapshot_get_cb);
  struct snapshotGet *snapshot_gets; /* the first is being read */
  uint64_t snapshots_sent;
  uint64_t snapshot_sends_skipped;
  /* An InstallSnapshot that arrived while this follower could not take it
   * (installPending); delivered once it can, replacing the drop. */
  struct raft_message *held_install;
  /* A member waiting to be added (catga_raft_set_refuse_votes). */
  bool refuse_votes;
  struct raft raft;
};

/* ---------------------------------------------------------------- guard */

int catga_raft_drop_unsafe_install(void *raft, void *message) {
  struct raft *r = raft;
  struct raft_message *m = message;
  if (m->type != RAFT_INSTALL_SNAPSHOT || !r->legacy.snapshot_taking) {
    return 0;
  }
  /* What libraft itself frees for a message it cannot take (legacy recvCb). */
  raft_configuration_close(&m->install_snapshot.conf);
  raft_free(m->install_snapshot.data.base);
  return 1;
}

static catga_raft *handleOfIo(struct raft_io *io) {
  return (catga_raft *)(void *)((char *)io - offsetof(catga_raft, io));
}

/* Whether an InstallSnapshot must wait: libraft 0.22.1 ignores one that
 * arrives during an install ("already taking or installing snapshot") and
 * mishandles one during a snapshot of its own (catga_raft_drop_unsafe_install).
 * The leader sends a snapshot once (sendSnapshotOnce), so the follower keeps
 * the newest such message and delivers it when that is over (checkCb). */
static bool installPending(const catga_raft *h) {
  return h->r->snapshot.installing || h->r->legacy.snapshot_taking ||
         h->install.busy;
}

/* The held message owns its configuration and data (as libraft would) and a
 * copy of the sender's address (the I/O's own string lives only as long as
 * the connection it came on). */
static void heldInstallRelease(struct raft_message *m) {
  free((char *)m->server_address);
  free(m);
}

static void heldInstallFree(catga_raft *h) {
  if (h->held_install != NULL) {
    raft_configuration_close(&h->held_install->install_snapshot.conf);
    raft_free(h->held_install->install_snapshot.data.base);
    heldInstallRelease(h->held_install);
    h->held_install = NULL;
  }
}

static void recvGuarded(struct raft_io *io, struct raft_message *message);

/* Loop thread, every iteration: delivers a held InstallSnapshot once the
 * follower can take it. */
static void heldInstallDeliver(catga_raft *h) {
  struct raft_message *m = h->held_install;
  if (m == NULL || installPending(h)) {
    return;
  }
  h->held_install = NULL;
  recvGuarded(&h->io, m);
  heldInstallRelease(m);
}

static void snapshotSendAnswered(catga_raft *h,
                                 const struct raft_message *message);

static void recvGuarded(struct raft_io *io, struct raft_message *message) {
  catga_raft *h = handleOfIo(io);
  if (message->type == RAFT_INSTALL_SNAPSHOT && installPending(h)) {
    struct raft_message *copy = malloc(sizeof *copy);
    char *address = message->server_address != NULL
                        ? strdup(message->server_address)
                        : NULL;
    if (copy != NULL && (address != NULL || message->server_address == NULL)) {
      *copy = *message;
      copy->server_address = address;
      heldInstallFree(h);
      h->held_install = copy;
      return;
    }
    free(copy);
    free(address);
  }
  if (catga_raft_drop_unsafe_install(h->r, message)) {
    return;
  }
  if (h->refuse_votes && message->type == RAFT_REQUEST_VOTE) {
    return; /* owns no memory; the candidate sees a lost message */
  }
  snapshotSendAnswered(h, message);
  h->inner_recv(io, message);
}

static int startGuarded(struct raft_io *io, unsigned msecs,
                        raft_io_tick_cb tick, raft_io_recv_cb recv) {
  catga_raft *h = handleOfIo(io);
  h->inner_recv = recv;
  return h->inner_start(io, msecs, tick, recvGuarded);
}

/* ---------------------------------------------------------------- installs */

/* libraft's persist request learns of the write once it and the decode are
 * both done; a close that arrived meanwhile proceeds then, with the write
 * reported as canceled (libraft frees the buffer; the file stays on disk). */
static void installMaybeDone(catga_raft *h) {
  struct raft_io_snapshot_put *req = h->install.req;
  raft_io_snapshot_put_cb cb = h->install.cb;
  raft_io_close_cb close_cb = h->install.close_cb;
  int status = h->install.status;
  if (!h->install.busy || !h->install.written || !h->install.decoded) {
    return;
  }
  h->install.busy = false;
  h->install.close_cb = NULL;
  if (close_cb != NULL) {
    status = RAFT_CANCELED;
  }
  cb(req, status);
  if (close_cb != NULL) {
    h->inner_close(&h->io, close_cb);
  }
}

static void installWritten(struct raft_io_snapshot_put *put, int status) {
  catga_raft *h = put->data;
  h->install.written = true;
  h->install.status = status;
  installMaybeDone(h);
}

static void installDecodeWork(uv_work_t *work) {
  catga_raft *h = work->data;
  h->cb.restore_prepare(h->cb.ctx, h->install.base, h->install.len);
}

static void installDecoded(uv_work_t *work, int status) {
  catga_raft *h = work->data;
  (void)status; /* never canceled: nothing calls uv_cancel on it */
  h->install.decoded = true;
  installMaybeDone(h);
}

/* A snapshot from the leader (legacyPersistSnapshotStart; trailing 0): write
 * it and decode it at once. Without this the decode ran inside
 * fsm->restore, on the loop thread, for as long as the state takes to decode
 * (seconds at millions of objects): the node answered no heartbeat, the
 * leader declared it unreachable after an election timeout, aborted the
 * install and sent the whole snapshot again. */
static int installPut(catga_raft *h, unsigned trailing,
                      struct raft_io_snapshot_put *req,
                      const struct raft_snapshot *snapshot,
                      raft_io_snapshot_put_cb cb) {
  int rv;
  memset(&h->install.put, 0, sizeof h->install.put);
  h->install.put.data = h;
  h->install.req = req;
  h->install.cb = cb;
  h->install.base = snapshot->bufs[0].base;
  h->install.len = snapshot->bufs[0].len;
  h->install.written = false;
  h->install.decoded = false;
  h->install.status = 0;
  rv = h->inner_snapshot_put(&h->io, trailing, &h->install.put, snapshot,
                             installWritten);
  if (rv != 0) {
    return rv;
  }
  h->install.busy = true;
  h->install.work.data = h;
  if (uv_queue_work(&h->loop, &h->install.work, installDecodeWork,
                    installDecoded) != 0) {
    h->install.decoded = true; /* fsm->restore decodes on the loop thread */
  }
  return 0;
}

static bool isInstall(const catga_raft *h, const struct raft_snapshot *snapshot) {
  return h->node_mode && h->cb.restore_prepare != NULL &&
         h->r->legacy.snapshot_install && !h->install.busy &&
         snapshot->n_bufs == 1 && snapshot->bufs[0].base != h->placeholder;
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
 * installing it (snapshotSendAnswered) — so an install that lasts longer
 * than the timeout gets no second copy (libraft frees the refused copy at
 * once); a failed send clears the way for the next. */
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

static int sendViaBook(struct raft_io *io, struct raft_io_send *req,
                       const struct raft_message *message, raft_io_send_cb cb);

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
static void snapshotSendReconnected(catga_raft *h, raft_id id) {
  struct snapshotSend *s;
  for (s = h->snapshot_sends; s != NULL; s = s->next) {
    if (s->id == id && !s->in_flight) {
      snapshotSendForget(h, s);
      return;
    }
  }
}

/* A message received, before libraft sees it. While a follower stores a
 * snapshot, libraft 0.22.1 keeps its last_stored at 0, so it answers the
 * heartbeats anchored at that snapshot's index with a success for index 0
 * (recv_append_entries.c); once it stored the snapshot, or after a failed
 * install, it answers otherwise. Such an answer keeps the send standing. */
static void snapshotSendAnswered(catga_raft *h,
                                 const struct raft_message *message) {
  const struct raft_append_entries_result *result;
  struct snapshotSend *s;
  if (message->type != RAFT_APPEND_ENTRIES_RESULT) {
    return;
  }
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

static int sendSnapshotOnce(struct raft_io *io, struct raft_io_send *req,
                            const struct raft_message *message,
                            raft_io_send_cb cb) {
  catga_raft *h = handleOfIo(io);
  struct snapshotSend *s;
  int rv;
  if (message->type != RAFT_INSTALL_SNAPSHOT) {
    return sendViaBook(io, req, message, cb);
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
  rv = sendViaBook(io, &s->inner, message, snapshotSent);
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
 * the other, so that a send refused by sendSnapshotOnce frees its buffer
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
  g->cb(g->outer, snapshot, status);
  free(g);
  getNext(h);
}

static int getInTurn(struct raft_io *io, struct raft_io_snapshot_get *req,
                     raft_io_snapshot_get_cb cb) {
  catga_raft *h = handleOfIo(io);
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

/* The snapshot the FSM deferred is held back until its bytes exist; an
 * install from the leader is decoded while it is written (installPut); every
 * other write (inline snapshots) passes through. */
static int snapshotPutHeld(struct raft_io *io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb) {
  catga_raft *h = handleOfIo(io);
  if (isInstall(h, snapshot)) {
    return installPut(h, trailing, req, snapshot, cb);
  }
  if (h->placeholder == NULL || snapshot->n_bufs != 1 ||
      snapshot->bufs[0].base != h->placeholder || h->put.held) {
    return h->inner_snapshot_put(io, trailing, req, snapshot, cb);
  }
  h->put.held = true;
  h->put.trailing = trailing;
  h->put.req = req;
  h->put.snapshot = snapshot;
  h->put.cb = cb;
  return 0;
}

static void pollClosed(uv_handle_t *handle) { free(handle); }

void catga_raft_snapshot_unwatch(catga_raft *h) {
  if (h->poll != NULL) {
    uv_close((uv_handle_t *)h->poll, pollClosed);
    h->poll = NULL;
  }
}

/* Raft is closing (raft_close calls this right away): a held-back write is
 * completed as canceled — the only failure libraft 0.22.1 accepts for it. */
static void closeHeld(struct raft_io *io, raft_io_close_cb cb) {
  catga_raft *h = handleOfIo(io);
  catga_raft_snapshot_unwatch(h);
  if (h->put.held) {
    struct raft_io_snapshot_put *req = h->put.req;
    h->put.held = false;
    if (h->cb.snapshot_cancel != NULL) {
      h->cb.snapshot_cancel(h->cb.ctx);
    }
    h->put.cb(req, RAFT_CANCELED);
  }
  heldInstallFree(h);
  if (h->install.busy) { /* installMaybeDone closes once the decode is done */
    h->install.close_cb = cb;
    return;
  }
  h->inner_close(io, cb);
}

static void pollCb(uv_poll_t *poll, int status, int events) {
  catga_raft *h = poll->data;
  (void)status;
  (void)events;
  if (!h->closing && h->cb.snapshot_ready != NULL) {
    h->cb.snapshot_ready(h->cb.ctx);
  }
}

int catga_raft_snapshot_watch(catga_raft *h, int fd) {
  int rv;
  if (!h->node_mode || h->closing || h->poll != NULL) {
    return RAFT_INVALID;
  }
  h->poll = malloc(sizeof *h->poll);
  if (h->poll == NULL) {
    return RAFT_NOMEM;
  }
  rv = uv_poll_init(&h->loop, h->poll, fd);
  if (rv != 0) {
    free(h->poll);
    h->poll = NULL;
    return RAFT_IOERR;
  }
  h->poll->data = h;
  rv = uv_poll_start(h->poll, UV_READABLE, pollCb);
  if (rv != 0) {
    catga_raft_snapshot_unwatch(h);
    return RAFT_IOERR;
  }
  return 0;
}

int catga_raft_snapshot_written(catga_raft *h, int memfd, size_t len) {
  struct raft_snapshot *snapshot;
  void *map;
  int rv;
  if (!h->put.held || h->mapped.base != NULL || len == 0) {
    close(memfd);
    return RAFT_INVALID;
  }
  map = mmap(NULL, len, PROT_READ, MAP_SHARED, memfd, 0);
  if (map == MAP_FAILED) {
    close(memfd);
    return RAFT_NOMEM;
  }
  h->mapped.base = map;
  h->mapped.len = len;
  h->mapped.fd = memfd;
  /* libraft's own struct (legacyTakeSnapshot's request): the placeholder
   * gives way to the real bytes; finalize releases both. */
  snapshot = (struct raft_snapshot *)h->put.snapshot;
  raft_free(snapshot->bufs[0].base);
  h->placeholder = NULL;
  snapshot->bufs[0].base = map;
  snapshot->bufs[0].len = len;
  h->put.held = false;
  rv = h->inner_snapshot_put(&h->io, h->put.trailing, h->put.req, snapshot,
                             h->put.cb);
  if (rv != 0) {
    h->put.held = true; /* closing completes it as canceled */
  }
  return rv;
}

/* ---------------------------------------------------------------- memory */

void *catga_raft_malloc(size_t size) { return raft_malloc(size); }
void catga_raft_free_buffer(void *p) { raft_free(p); }

/* ---------------------------------------------------------------- FSM glue */

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                    void **result) {
  catga_raft *h = fsm->data;
  /* libraft advances last_applied right after this call returns. */
  uint64_t index = (uint64_t)raft_last_applied(h->r) + 1;
  *result = NULL; /* results travel through the C++ side, keyed by index */
  return h->cb.apply(h->cb.ctx, index, buf->base, buf->len);
}

static int fsmSnapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                       unsigned *n_bufs) {
  catga_raft *h = fsm->data;
  void *data = NULL;
  size_t len = 0;
  int rv = h->cb.snapshot(h->cb.ctx, &data, &len);
  bool deferred = rv == CATGA_SNAPSHOT_DEFERRED;
  if (rv != 0 && !deferred) {
    return rv;
  }
  if (deferred) { /* snapshotPutHeld holds libraft's write back */
    data = NULL;
    len = 0;
  }
  *bufs = raft_malloc(sizeof **bufs);
  if (*bufs == NULL) {
    raft_free(data);
    return RAFT_NOMEM;
  }
  if (data == NULL) { /* libraft wants a real buffer even for empty state */
    data = raft_malloc(8);
    if (data == NULL) {
      raft_free(*bufs);
      return RAFT_NOMEM;
    }
    len = 0;
  }
  (*bufs)[0].base = data;
  (*bufs)[0].len = len;
  *n_bufs = 1;
  h->placeholder = deferred ? data : NULL;
  return 0;
}

/* libraft is done with a snapshot's buffers (written, or canceled). */
static int fsmSnapshotFinalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                               unsigned *n_bufs) {
  catga_raft *h = fsm->data;
  unsigned i;
  for (i = 0; i < *n_bufs; i++) {
    void *base = (*bufs)[i].base;
    if (base != NULL && base == h->mapped.base) {
      munmap(h->mapped.base, h->mapped.len);
      close(h->mapped.fd);
      h->mapped.base = NULL;
    } else {
      if (base == h->placeholder) {
        h->placeholder = NULL;
      }
      raft_free(base);
    }
  }
  raft_free(*bufs);
  *bufs = NULL;
  *n_bufs = 0;
  return 0;
}

static int fsmRestore(struct raft_fsm *fsm, struct raft_buffer *buf) {
  catga_raft *h = fsm->data;
  int rv = h->cb.restore(h->cb.ctx, buf->base, buf->len);
  if (rv != 0) {
    return rv; /* on failure libraft keeps ownership of buf */
  }
  raft_free(buf->base); /* on success the FSM owns it */
  return 0;
}

static void fsmInit(catga_raft *h) {
  memset(&h->fsm, 0, sizeof h->fsm);
  h->fsm.version = 2;
  h->fsm.data = h;
  h->fsm.apply = fsmApply;
  h->fsm.snapshot = fsmSnapshot;
  h->fsm.restore = fsmRestore;
  h->fsm.snapshot_finalize = fsmSnapshotFinalize;
}

/* ---------------------------------------------------------------- NODELAY */

static catga_raft *fromTransport(struct raft_uv_transport *t) {
  return (catga_raft *)((char *)t - offsetof(catga_raft, transport));
}

static void acceptNoDelay(struct raft_uv_transport *t, raft_id id,
                          const char *address, struct uv_stream_s *stream) {
  catga_raft *h = fromTransport(t);
  if (stream != NULL && stream->type == UV_TCP) {
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
  }
  h->accept_cb(t, id, address, stream);
}

static int listenNoDelay(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
  catga_raft *h = fromTransport(t);
  h->accept_cb = cb;
  return h->inner_listen(t, acceptNoDelay);
}

struct connectNoDelay {
  struct raft_uv_connect inner; /* first: the transport sees only this */
  struct raft_uv_connect *outer;
  raft_uv_connect_cb outer_cb;
  catga_raft *h;
  raft_id id;
};

static void snapshotSendReconnected(catga_raft *h, raft_id id);

static void connectNoDelayCb(struct raft_uv_connect *req,
                             struct uv_stream_s *stream, int status) {
  struct connectNoDelay *c = (struct connectNoDelay *)req;
  struct raft_uv_connect *outer = c->outer;
  raft_uv_connect_cb cb = c->outer_cb;
  catga_raft *h = c->h;
  raft_id id = c->id;
  raft_free(c);
  if (status == 0 && stream != NULL && stream->type == UV_TCP) {
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
  }
  if (status == 0) {
    snapshotSendReconnected(h, id);
  }
  outer->cb = cb;
  cb(outer, stream, status);
}

static int connectNoDelay(struct raft_uv_transport *t,
                          struct raft_uv_connect *req, raft_id id,
                          const char *address, raft_uv_connect_cb cb) {
  catga_raft *h = fromTransport(t);
  struct connectNoDelay *c = raft_malloc(sizeof *c);
  int rv;
  if (c == NULL) {
    return RAFT_NOMEM;
  }
  memset(c, 0, sizeof *c);
  c->outer = req;
  c->outer_cb = cb;
  c->h = h;
  c->id = id;
  req->cb = cb;
  rv = h->inner_connect(t, &c->inner, id, address, connectNoDelayCb);
  if (rv != 0) {
    raft_free(c);
  }
  return rv;
}

/* ---------------------------------------------------------- address book */

/* How this node reaches a peer is local knowledge (raft_c.h, address_book).
 * libraft sends to the address of the destination's configuration entry — or,
 * for an answer, to the address the requester announced in its handshake —
 * and its uv I/O keeps one outbound connection per id, replaced whenever the
 * address it is given changes. Substituting the book's address for every
 * message, before the I/O sees it, gives each listed peer one stable address
 * whatever the replicated configuration says; the transport underneath (TCP
 * or another) dials what it is given. */

static void bookClear(catga_raft *h) {
  unsigned i;
  for (i = 0; i < h->book.n; i++) {
    free(h->book.addresses[i]);
  }
  free(h->book.addresses);
  free(h->book.ids);
  memset(&h->book, 0, sizeof h->book);
}

static int bookInit(catga_raft *h, const struct catga_raft_member *members,
                    unsigned n) {
  unsigned i;
  if (n == 0) {
    return 0;
  }
  h->book.ids = calloc(n, sizeof *h->book.ids);
  h->book.addresses = calloc(n, sizeof *h->book.addresses);
  if (h->book.ids == NULL || h->book.addresses == NULL) {
    bookClear(h);
    return RAFT_NOMEM;
  }
  for (i = 0; i < n; i++) {
    size_t len = strlen(members[i].address) + 1;
    h->book.addresses[i] = malloc(len);
    if (h->book.addresses[i] == NULL) {
      h->book.n = i;
      bookClear(h);
      return RAFT_NOMEM;
    }
    memcpy(h->book.addresses[i], members[i].address, len);
    h->book.ids[i] = members[i].id;
  }
  h->book.n = n;
  return 0;
}

static const char *bookLookup(const catga_raft *h, raft_id id) {
  unsigned i;
  for (i = 0; i < h->book.n; i++) {
    if (h->book.ids[i] == id) {
      return h->book.addresses[i];
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

static int sendViaBook(struct raft_io *io, struct raft_io_send *req,
                       const struct raft_message *message,
                       raft_io_send_cb cb) {
  catga_raft *h = handleOfIo(io);
  const char *address = bookLookup(h, message->server_id);
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

/* ---------------------------------------------------------------- node mode */

static void asyncCb(uv_async_t *async) {
  catga_raft *h = async->data;
  if (!h->closing && h->cb.wake != NULL) {
    h->cb.wake(h->cb.ctx);
  }
}

/* libraft 0.22.1 hands each log segment writer the io's errmsg buffer; a
 * failed write leaves one of these messages there (src/uv_writer.c) and then
 * schedules its retry, uvAppendRetryTimerCb, on the *prepare* retry timer,
 * whose data is the struct uv, not the segment: when the timer fires (after
 * disk_retry, 5 s) it dereferences the struct uv as a segment and the process
 * dies (SIGSEGV; src/uv_append.c, uvAliveSegmentWriteCb). Closing raft stops
 * that timer, so the only safe answer to a failed write is to stop. */
static bool segmentWriteFailed(const char *msg) {
  return strncmp(msg, "write failed:", 13) == 0 ||
         strncmp(msg, "short write:", 12) == 0;
}

static void checkCb(uv_check_t *check) {
  catga_raft *h = check->data;
  if (h->closing) {
    return;
  }
  if (!h->disk_failed && segmentWriteFailed(h->io.errmsg)) {
    h->disk_failed = true;
    if (h->cb.disk_failed != NULL) {
      h->cb.disk_failed(h->cb.ctx, h->io.errmsg);
      if (h->closing) {
        return;
      }
    }
  }
  heldInstallDeliver(h);
  if (h->cb.after_io != NULL) {
    h->cb.after_io(h->cb.ctx);
  }
}

static int roleToRaft(int role) {
  switch (role) {
    case CATGA_ROLE_STANDBY:
      return RAFT_STANDBY;
    case CATGA_ROLE_SPARE:
      return RAFT_SPARE;
    default:
      return RAFT_VOTER;
  }
}

static int roleFromRaft(int role) {
  switch (role) {
    case RAFT_STANDBY:
      return CATGA_ROLE_STANDBY;
    case RAFT_SPARE:
      return CATGA_ROLE_SPARE;
    default:
      return CATGA_ROLE_VOTER;
  }
}

static void drainLoop(catga_raft *h) {
  uv_run(&h->loop, UV_RUN_DEFAULT);
  uv_loop_close(&h->loop);
}

/* Releases the transport (stock or authenticated) after it closed. */
static void transportRelease(catga_raft *h) {
  if (h->authenticated) {
    catga_auth_transport_close(&h->transport);
  } else {
    raft_uv_tcp_close(&h->transport);
  }
}

static void transportRefused(void *ctx, const char *line) {
  catga_raft *h = ctx;
  if (h->cb.transport_refused != NULL) {
    h->cb.transport_refused(h->cb.ctx, line);
  }
}

static void openFailRaftCloseCb(struct raft *r) {
  catga_raft *h = r->data;
  raft_uv_close(&h->io);
  transportRelease(h);
}

/* A handle with the FSM glue, the loop, the TCP transport, the uv I/O on
 * `dir` (auto-recovery off) and the raft instance (raft_init, which loads the
 * metadata); nothing started. On failure *out is NULL, everything released. */
static int initRaft(catga_raft **out, const struct catga_raft_callbacks *cb,
                    const struct catga_raft_config *config, char *errmsg,
                    size_t errmsg_len) {
  const char *dir = config->dir;
  catga_raft *h;
  int rv;
  *out = NULL;
  h = calloc(1, sizeof *h);
  if (h == NULL) {
    snprintf(errmsg, errmsg_len, "out of memory");
    return RAFT_NOMEM;
  }
  if (cb != NULL) {
    h->cb = *cb;
  }
  fsmInit(h);
  rv = uv_loop_init(&h->loop);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "uv_loop_init: %s", uv_strerror(rv));
    free(h);
    return -1;
  }
  h->transport.version = 1; /* required before raft_uv_tcp_init */
  if (config->secret_len > 0 ||
      (config->tls_cert_file != NULL && config->tls_cert_file[0] != '\0')) {
    struct catga_auth_options auth = {
        .secret = config->secret,
        .secret_len = config->secret_len,
        .cluster_id = config->cluster_id,
        .handshake_timeout_ms = config->handshake_timeout_ms,
        .max_pending = 64,
        .log = transportRefused,
        .log_ctx = h,
        .tls_ca_file = config->tls_ca_file,
        .tls_cert_file = config->tls_cert_file,
        .tls_key_file = config->tls_key_file,
    };
    h->authenticated = true;
    rv = catga_auth_transport_init(&h->transport, &h->loop, &auth);
  } else {
    rv = raft_uv_tcp_init(&h->transport, &h->loop);
  }
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "transport: %s",
             h->transport.errmsg[0] ? h->transport.errmsg : raft_strerror(rv));
    drainLoop(h);
    free(h);
    return rv;
  }
  rv = raft_uv_init(&h->io, &h->loop, dir, &h->transport);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "raft_uv_init(%s): %s", dir,
             h->io.errmsg[0] ? h->io.errmsg : raft_strerror(rv));
    transportRelease(h);
    drainLoop(h);
    free(h);
    return rv;
  }
  raft_uv_set_auto_recovery(&h->io, false);
  if (getenv("LIBRAFT_TRACE") == NULL) {
    /* libraft formats every trace message into a static buffer even when
     * tracing is disabled: costly, and racy with several nodes per process. */
    raft_uv_set_tracer(&h->io, NULL);
  }
  rv = raft_init(&h->raft, &h->io, &h->fsm, config->id, config->address);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "raft_init: %s", raft_errmsg(&h->raft));
    raft_uv_close(&h->io);
    transportRelease(h);
    drainLoop(h);
    free(h);
    return rv;
  }
  h->raft.data = h;
  h->r = &h->raft;
  if (getenv("LIBRAFT_TRACE") == NULL) {
    h->raft.tracer = NULL;
  }
  *out = h;
  return 0;
}

int catga_raft_open(const struct catga_raft_config *config,
                    const struct catga_raft_callbacks *callbacks,
                    catga_raft **out, char *errmsg, size_t errmsg_len) {
  catga_raft *h;
  int rv;
  unsigned i;

  *out = NULL;
  rv = initRaft(&h, callbacks, config, errmsg, errmsg_len);
  if (rv != 0) {
    return rv;
  }
  h->node_mode = true;
  h->inner_listen = h->transport.listen;
  h->inner_connect = h->transport.connect;
  h->transport.listen = listenNoDelay;
  h->transport.connect = connectNoDelay;
  h->inner_start = h->io.start;
  h->io.start = startGuarded;
  h->inner_snapshot_put = h->io.snapshot_put;
  h->io.snapshot_put = snapshotPutHeld;
  h->inner_close = h->io.close;
  h->io.close = closeHeld;
  h->inner_send = h->io.send;
  h->io.send = sendSnapshotOnce;
  h->inner_snapshot_get = h->io.snapshot_get;
  h->io.snapshot_get = getInTurn;
  rv = bookInit(h, config->address_book, config->n_address_book);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "address book: %s", raft_strerror(rv));
  }
  raft_set_election_timeout(h->r, config->election_timeout_ms);
  raft_set_heartbeat_timeout(h->r, config->heartbeat_ms);
  raft_set_snapshot_threshold(h->r, config->snapshot_threshold);
  raft_set_snapshot_trailing(h->r, config->snapshot_trailing);
  raft_set_pre_vote(h->r, true);

  if (rv == 0 && config->bootstrap) {
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (i = 0; i < config->n_members && rv == 0; i++) {
      const struct catga_raft_member *m = &config->members[i];
      rv = raft_configuration_add(&conf, m->id, m->address,
                                  roleToRaft(m->role));
    }
    if (rv == 0) {
      rv = raft_bootstrap(h->r, &conf);
      if (rv != 0) {
        snprintf(errmsg, errmsg_len, "raft_bootstrap: %s",
                 raft_errmsg(h->r)[0] ? raft_errmsg(h->r) : raft_strerror(rv));
      }
    } else {
      snprintf(errmsg, errmsg_len, "configuration: %s", raft_strerror(rv));
    }
    raft_configuration_close(&conf);
  }

  if (rv == 0) {
    rv = raft_start(h->r);
    if (rv != 0) {
      snprintf(errmsg, errmsg_len, "%s",
               raft_errmsg(h->r)[0] ? raft_errmsg(h->r) : raft_strerror(rv));
    }
  }
  if (rv == 0) {
    rv = uv_async_init(&h->loop, &h->async, asyncCb);
    if (rv == 0) {
      h->async.data = h;
      uv_check_init(&h->loop, &h->check);
      h->check.data = h;
      uv_check_start(&h->check, checkCb);
    } else {
      snprintf(errmsg, errmsg_len, "uv_async_init: %s", uv_strerror(rv));
      rv = -1;
    }
  }
  if (rv != 0) {
    raft_close(h->r, openFailRaftCloseCb);
    drainLoop(h);
    bookClear(h);
    free(h);
    return rv;
  }
  *out = h;
  return 0;
}

void catga_raft_run(catga_raft *h) { uv_run(&h->loop, UV_RUN_DEFAULT); }

void catga_raft_wake(catga_raft *h) { uv_async_send(&h->async); }

static void raftCloseCb(struct raft *r) {
  catga_raft *h = r->data;
  raft_uv_close(&h->io);
  transportRelease(h);
  if (h->cb.closed != NULL) {
    h->cb.closed(h->cb.ctx);
  }
}

void catga_raft_close(catga_raft *h) {
  if (h->closing) {
    return;
  }
  h->closing = true;
  if (!h->node_mode) {
    return;
  }
  uv_close((uv_handle_t *)&h->async, NULL);
  uv_check_stop(&h->check);
  uv_close((uv_handle_t *)&h->check, NULL);
  raft_close(h->r, raftCloseCb);
}

int catga_raft_free(catga_raft *h) {
  int rv = 0;
  if (h == NULL) {
    return 0;
  }
  if (h->node_mode) {
    uv_run(&h->loop, UV_RUN_NOWAIT); /* finish anything left */
    rv = uv_loop_close(&h->loop);
  }
  while (h->snapshot_sends != NULL) {
    snapshotSendForget(h, h->snapshot_sends);
  }
  bookClear(h);
  free(h);
  return rv;
}

/* ---------------------------------------------------------------- attached */

catga_raft *catga_raft_glue_new(const struct catga_raft_callbacks *callbacks) {
  catga_raft *h = calloc(1, sizeof *h);
  if (h == NULL) {
    return NULL;
  }
  h->cb = *callbacks;
  fsmInit(h);
  return h;
}

void *catga_raft_glue_fsm(catga_raft *h) { return &h->fsm; }

void catga_raft_glue_attach(catga_raft *h, void *raft) { h->r = raft; }

/* ---------------------------------------------------------------- requests */

struct applyReq {
  struct raft_apply req;
  catga_raft *h;
  void *ctx;
};

static void applyCb(struct raft_apply *req, int status, void *result) {
  struct applyReq *a = (struct applyReq *)req;
  catga_raft *h = a->h;
  void *ctx = a->ctx;
  uint64_t index = req->index;
  (void)result;
  raft_free(a);
  h->cb.apply_done(h->cb.ctx, ctx, index, status);
}

int catga_raft_apply(catga_raft *h, void *data, size_t len, void *req_ctx,
                     uint64_t *index) {
  struct applyReq *a;
  struct raft_buffer buf;
  int rv;
  if (h->closing) {
    raft_free(data);
    return RAFT_SHUTDOWN;
  }
  a = raft_malloc(sizeof *a);
  if (a == NULL) {
    raft_free(data);
    return RAFT_NOMEM;
  }
  memset(a, 0, sizeof *a);
  a->h = h;
  a->ctx = req_ctx;
  buf.base = data;
  buf.len = len;
  rv = raft_apply(h->r, &a->req, &buf, 1, applyCb);
  if (rv != 0) {
    raft_free(a);
    /* Who owns `data` now depends on where raft_apply failed: before the
     * append (not the leader) it is still ours; after it (replication could
     * not be triggered, e.g. a disk error) libraft has discarded the entry and
     * freed the buffer already. Only the first case is recognizable by its
     * code, so the buffer is freed only then: a rare leak is better than a
     * double free (found by tests/sim with disk faults). RAFT_NOSPACE (the
     * capacity check) also refuses before the append. */
    if (rv == RAFT_NOTLEADER || rv == RAFT_NOSPACE) {
      raft_free(data);
    }
    return rv;
  }
  *index = a->req.index;
  return 0;
}

struct barrierReq {
  struct raft_barrier req;
  catga_raft *h;
  void *ctx;
};

static void barrierCb(struct raft_barrier *req, int status) {
  struct barrierReq *b = (struct barrierReq *)req;
  catga_raft *h = b->h;
  void *ctx = b->ctx;
  uint64_t index = req->index;
  raft_free(b);
  h->cb.barrier_done(h->cb.ctx, ctx, index, status);
}

int catga_raft_barrier(catga_raft *h, void *req_ctx) {
  struct barrierReq *b;
  int rv;
  if (h->closing) {
    return RAFT_SHUTDOWN;
  }
  b = raft_malloc(sizeof *b);
  if (b == NULL) {
    return RAFT_NOMEM;
  }
  memset(b, 0, sizeof *b);
  b->h = h;
  b->ctx = req_ctx;
  rv = raft_barrier(h->r, &b->req, barrierCb);
  if (rv != 0) {
    raft_free(b);
  }
  return rv;
}

void catga_raft_set_snapshot_threshold(catga_raft *h, unsigned n) {
  if (h->r != NULL) {
    raft_set_snapshot_threshold(h->r, n);
  }
}

void catga_raft_set_refuse_votes(catga_raft *h, int refuse) {
  h->refuse_votes = refuse != 0;
}

void catga_raft_set_snapshot_trailing(catga_raft *h, unsigned n) {
  if (h->r != NULL && n > 0) {
    raft_set_snapshot_trailing(h->r, n);
  }
}

struct changeReq {
  struct raft_change req;
  catga_raft *h;
  void *ctx;
};

static void changeCb(struct raft_change *req, int status) {
  struct changeReq *c = (struct changeReq *)req;
  catga_raft *h = c->h;
  void *ctx = c->ctx;
  raft_free(c);
  h->cb.change_done(h->cb.ctx, ctx, status);
}

static struct changeReq *changeNew(catga_raft *h, void *req_ctx) {
  struct changeReq *c = raft_malloc(sizeof *c);
  if (c != NULL) {
    memset(c, 0, sizeof *c);
    c->h = h;
    c->ctx = req_ctx;
  }
  return c;
}

int catga_raft_add(catga_raft *h, uint64_t id, const char *address,
                   void *req_ctx) {
  struct changeReq *c;
  int rv;
  if (h->closing) {
    return RAFT_SHUTDOWN;
  }
  if ((c = changeNew(h, req_ctx)) == NULL) {
    return RAFT_NOMEM;
  }
  rv = raft_add(h->r, &c->req, id, address, changeCb);
  if (rv != 0) {
    raft_free(c);
  }
  return rv;
}

int catga_raft_assign(catga_raft *h, uint64_t id, int role, void *req_ctx) {
  struct changeReq *c;
  int rv;
  if (h->closing) {
    return RAFT_SHUTDOWN;
  }
  if ((c = changeNew(h, req_ctx)) == NULL) {
    return RAFT_NOMEM;
  }
  rv = raft_assign(h->r, &c->req, id, roleToRaft(role), changeCb);
  if (rv != 0) {
    raft_free(c);
  }
  return rv;
}

int catga_raft_remove(catga_raft *h, uint64_t id, void *req_ctx) {
  struct changeReq *c;
  int rv;
  if (h->closing) {
    return RAFT_SHUTDOWN;
  }
  if ((c = changeNew(h, req_ctx)) == NULL) {
    return RAFT_NOMEM;
  }
  rv = raft_remove(h->r, &c->req, id, changeCb);
  if (rv != 0) {
    raft_free(c);
  }
  return rv;
}

struct transferReq {
  struct raft_transfer req;
  catga_raft *h;
  void *ctx;
};

static void transferCb(struct raft_transfer *req) {
  struct transferReq *t = (struct transferReq *)req;
  catga_raft *h = t->h;
  void *ctx = t->ctx;
  raft_free(t);
  h->cb.transfer_done(h->cb.ctx, ctx);
}

int catga_raft_transfer(catga_raft *h, uint64_t id, void *req_ctx) {
  struct transferReq *t;
  int rv;
  if (h->closing) {
    return RAFT_SHUTDOWN;
  }
  t = raft_malloc(sizeof *t);
  if (t == NULL) {
    return RAFT_NOMEM;
  }
  memset(t, 0, sizeof *t);
  t->h = h;
  t->ctx = req_ctx;
  rv = raft_transfer(h->r, &t->req, id, transferCb);
  if (rv != 0) {
    raft_free(t);
  }
  return rv;
}

/* ---------------------------------------------------------------- info */

void catga_raft_get_info(catga_raft *h, struct catga_raft_info *info) {
  struct raft *r = h->r;
  raft_id leader_id = 0;
  const char *leader_address = NULL;
  memset(info, 0, sizeof *info);
  info->leader_address = "";
  if (r == NULL) {
    return;
  }
  switch (raft_state(r)) {
    case RAFT_FOLLOWER:
      info->state = CATGA_STATE_FOLLOWER;
      break;
    case RAFT_CANDIDATE:
      info->state = CATGA_STATE_CANDIDATE;
      break;
    case RAFT_LEADER:
      info->state = CATGA_STATE_LEADER;
      break;
    default:
      info->state = CATGA_STATE_UNAVAILABLE;
      break;
  }
  info->term = raft_current_term(r);
  raft_leader(r, &leader_id, &leader_address);
  info->leader_id = leader_id;
  if (leader_address != NULL) {
    info->leader_address = leader_address;
  }
  info->commit_index = raft_commit_index(r);
  info->applied_index = raft_last_applied(r);
  info->last_index = raft_last_index(r);
  info->snapshot_index = r->trail.snapshot.index;
  /* A follower restarts its election timer whenever it hears from the leader. */
  info->leader_contact_ms = UINT64_MAX;
  if (raft_state(r) == RAFT_FOLLOWER && leader_id != 0) {
    raft_time now = r->io->time(r->io);
    info->leader_contact_ms = now >= r->election_timer_start ? now - r->election_timer_start : 0;
  }
  info->snapshots_sent = h->snapshots_sent;
  info->snapshot_sends_skipped = h->snapshot_sends_skipped;
  info->config_committed_index = r->configuration_committed_index;
  info->config_uncommitted_index = r->configuration_uncommitted_index;
}

unsigned catga_raft_n_members(catga_raft *h) {
  return h->r != NULL ? h->r->configuration.n : 0;
}

void catga_raft_get_member(catga_raft *h, unsigned i, struct catga_raft_member *m) {
  const struct raft_server *s = &h->r->configuration.servers[i];
  m->id = s->id;
  m->address = s->address;
  m->role = roleFromRaft(s->role);
}

uint64_t catga_raft_term(catga_raft *h) {
  return h->r != NULL ? raft_current_term(h->r) : 0;
}

const char *catga_raft_errmsg(catga_raft *h) {
  return h->r != NULL ? raft_errmsg(h->r) : "";
}

const char *catga_raft_strerror(int code) { return raft_strerror(code); }

/* ---------------------------------------------------------------- offline */

int catga_raft_decode_snapshot_meta(const void *meta, size_t len,
                                    uint64_t *configuration_index,
                                    catga_raft_member_cb each, void *ctx,
                                    char *errmsg, size_t errmsg_len) {
  /* src/uv_snapshot.c (uvSnapshotLoadMeta): four little-endian u64 — format,
   * CRC, configuration index, configuration length — then the encoded
   * configuration (raft_configuration_decode). */
  const uint8_t *p = meta;
  uint64_t header[4];
  struct raft_configuration conf;
  struct raft_buffer buf;
  unsigned i;
  int rv;
  if (len < sizeof header) {
    snprintf(errmsg, errmsg_len, "snapshot metadata has %zu bytes", len);
    return RAFT_MALFORMED;
  }
  for (i = 0; i < 4; i++) {
    uint64_t v = 0;
    unsigned b;
    for (b = 0; b < 8; b++) {
      v |= (uint64_t)p[i * 8 + b] << (8 * b);
    }
    header[i] = v;
  }
  if (header[0] != 1) {
    snprintf(errmsg, errmsg_len, "snapshot metadata format %llu (expected 1)",
             (unsigned long long)header[0]);
    return RAFT_MALFORMED;
  }
  if (header[3] > len - sizeof header) {
    snprintf(errmsg, errmsg_len,
             "snapshot metadata announces a %llu-byte configuration in %zu bytes",
             (unsigned long long)header[3], len - sizeof header);
    return RAFT_MALFORMED;
  }
  *configuration_index = header[2];
  buf.base = (void *)(p + sizeof header);
  buf.len = (size_t)header[3];
  raft_configuration_init(&conf);
  rv = raft_configuration_decode(&buf, &conf);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "snapshot configuration: %s", raft_strerror(rv));
    return rv;
  }
  for (i = 0; i < conf.n; i++) {
    each(ctx, conf.servers[i].id, conf.servers[i].address,
         roleFromRaft(conf.servers[i].role));
  }
  raft_configuration_close(&conf);
  return 0;
}

int catga_raft_force_configuration(const char *dir, uint64_t id,
                                   const char *address,
                                   const struct catga_raft_member *members,
                                   unsigned n_members, uint64_t term,
                                   char *errmsg, size_t errmsg_len) {
  catga_raft *h;
  struct raft_configuration conf;
  unsigned i;
  int rv;

  /* No callbacks: the FSM is never called (raft_start is not). */
  {
    struct catga_raft_config offline = {0};
    offline.id = id;
    offline.address = address;
    offline.dir = dir;
    rv = initRaft(&h, NULL, &offline, errmsg, errmsg_len);
  }
  if (rv != 0) {
    return rv;
  }
  /* A directory holding only a snapshot has no metadata (term 0): give it
   * the snapshot's term so that the node's first election starts above it. */
  if (term > 0) {
    rv = h->io.set_term(&h->io, term);
    if (rv != 0) {
      snprintf(errmsg, errmsg_len, "set term %llu: %s", (unsigned long long)term,
               h->io.errmsg[0] ? h->io.errmsg : raft_strerror(rv));
    }
  }
  if (rv == 0) {
    raft_configuration_init(&conf);
    for (i = 0; i < n_members && rv == 0; i++) {
      rv = raft_configuration_add(&conf, members[i].id, members[i].address,
                                  roleToRaft(members[i].role));
    }
    if (rv == 0) {
      /* src/uv.c, uvRecover: loads the log (it must hold at least a snapshot
       * or an entry) and writes a closed segment holding one configuration
       * entry right after the last entry. */
      rv = raft_recover(&h->raft, &conf);
      if (rv != 0) {
        snprintf(errmsg, errmsg_len, "raft_recover: %s",
                 h->io.errmsg[0] ? h->io.errmsg : raft_strerror(rv));
      }
    } else {
      snprintf(errmsg, errmsg_len, "configuration: %s", raft_strerror(rv));
    }
    raft_configuration_close(&conf);
  }
  raft_close(&h->raft, openFailRaftCloseCb);
  drainLoop(h);
  free(h);
  return rv;
}
