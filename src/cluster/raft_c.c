/* src/cluster/raft_c.c — every libraft call of Catga (see raft_c.h). */
#include "cluster/raft_c.h"
#include "cluster/raft_address_book.h"
#include "cluster/raft_auth.h"
#include "cluster/raft_change_index.h"
#include "cluster/raft_deferred_snapshot.h"
#include "cluster/raft_foreign.h"
#include "cluster/fork_excluded_heap.h"
#include "cluster/raft_handle.h"
#include "cluster/raft_install.h"
#include "cluster/raft_peer_link.h"
#include "cluster/raft_snapshot_send.h"

#include <raft.h>
#include <raft/uv.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
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

/* ---------------------------------------------------------------- guard */

/* True while this node's configuration has only ever been {itself}: the
 * configuration it holds is the entry at index 1 (its bootstrap; a snapshot
 * keeps the index of the configuration it holds) and names only this node.
 * Any later configuration (a member added, a removal, raft_recover, a
 * snapshot installed from a leader) has a higher index. */
static bool aloneSinceBootstrap(const struct raft *r) {
  raft_index at = r->configuration_uncommitted_index != 0
                      ? r->configuration_uncommitted_index
                      : r->configuration_committed_index;
  return at == 1 && r->configuration.n == 1 &&
         r->configuration.servers[0].id == r->id;
}

static raft_term messageTerm(const struct raft_message *m) {
  switch (m->type) {
    case RAFT_REQUEST_VOTE:
      return m->request_vote.term;
    case RAFT_REQUEST_VOTE_RESULT:
      return m->request_vote_result.term;
    case RAFT_APPEND_ENTRIES:
      return m->append_entries.term;
    case RAFT_APPEND_ENTRIES_RESULT:
      return m->append_entries_result.term;
    case RAFT_INSTALL_SNAPSHOT:
      return m->install_snapshot.term;
    case RAFT_TIMEOUT_NOW:
      return m->timeout_now.term;
    default:
      return 0;
  }
}

/* What libraft's own recvCb frees for a message it does not take. */
static void dropMessage(struct raft_message *m) {
  if (m->type == RAFT_APPEND_ENTRIES && m->append_entries.n_entries > 0) {
    void *batch = NULL;
    unsigned i;
    for (i = 0; i < m->append_entries.n_entries; i++) {
      if (m->append_entries.entries[i].batch != batch) {
        batch = m->append_entries.entries[i].batch;
        raft_free(batch);
      }
    }
    raft_free(m->append_entries.entries);
  } else if (m->type == RAFT_INSTALL_SNAPSHOT) {
    raft_configuration_close(&m->install_snapshot.conf);
    raft_free(m->install_snapshot.data.base);
  }
}

/* A message from another cluster that lists this lone node (raft_foreign.h):
 * dropped, the first remembered. */
static bool dropForeign(catga_raft *h, struct raft_message *m) {
  if (m->server_id == h->r->id || !aloneSinceBootstrap(h->r)) {
    return false;
  }
  if (!h->foreign.seen) {
    h->foreign.seen = true;
    h->foreign.id = m->server_id;
    h->foreign.term = messageTerm(m);
    h->foreign.own_term = raft_current_term(h->r);
    snprintf(h->foreign.address, sizeof h->foreign.address, "%s",
             m->server_address != NULL ? m->server_address : "");
  }
  dropMessage(m);
  return true;
}

int catga_raft_foreign_sender(const catga_raft *h, uint64_t *id,
                              uint64_t *term, uint64_t *own_term,
                              char *address, size_t address_len) {
  if (!h->foreign.seen) {
    return 0;
  }
  *id = h->foreign.id;
  *term = h->foreign.term;
  *own_term = h->foreign.own_term;
  if (address_len > 0) {
    snprintf(address, address_len, "%s", h->foreign.address);
  }
  return 1;
}

/* Every received message passes here before libraft sees it. */
static void recvGuarded(struct raft_io *io, struct raft_message *message) {
  catga_raft *h = catga_raft_of_io(io);
  catga_peer_link_received(h, message);
  if (dropForeign(h, message)) {
    return;
  }
  if (catga_install_hold(h, message) ||
      catga_raft_drop_unsafe_install(h->r, message)) {
    return;
  }
  /* A member waiting to be added (its data directory emptied) has
   * forgotten its vote: it neither votes nor, below, campaigns. */
  if (h->refuse_votes && (message->type == RAFT_REQUEST_VOTE ||
                          message->type == RAFT_TIMEOUT_NOW)) {
    return; /* owns no memory; the sender sees a lost message */
  }
  catga_raft_answer_stale_install(h->r, message);
  catga_raft_skip_snapshotted_entries(h->r, message);
  catga_snapshot_send_answered(h, message);
  catga_raft_change_entry_first(message);
  h->inner_recv(io, message);
}

/* libraft's timer. A follower times out into an election only in its tick
 * (src/timeout.c), so a member waiting to be added skips it: once the
 * entries it received list it as a voter — it was wiped and started with
 * --join without being removed first — it would otherwise campaign, and win
 * with the votes of members that lack entries only it and the missing ones
 * had, although it refuses votes itself. A follower's tick does nothing
 * else (libraft's other work also runs after every received message). */
static void tickGuarded(struct raft_io *io) {
  catga_raft *h = catga_raft_of_io(io);
  if (h->refuse_votes && h->r != NULL && h->r->state == RAFT_FOLLOWER) {
    return;
  }
  h->inner_tick(io);
}

static int startGuarded(struct raft_io *io, unsigned msecs,
                        raft_io_tick_cb tick, raft_io_recv_cb recv) {
  catga_raft *h = catga_raft_of_io(io);
  h->inner_recv = recv;
  h->inner_tick = tick;
  return h->inner_start(io, msecs, tickGuarded, recvGuarded);
}

/* Loop thread, every iteration: delivers a held InstallSnapshot once the
 * follower can take it. */
static void heldInstallDeliver(catga_raft *h) {
  struct raft_message *m = catga_install_take_held(h);
  if (m != NULL) {
    recvGuarded(&h->io, m);
    catga_install_release_held(m);
  }
}

/* ---------------------------------------------------------------- close */

/* Raft is closing (raft_close calls the I/O's close right away): a
 * held-back snapshot write completes as canceled
 * (raft_deferred_snapshot.c), a held InstallSnapshot is freed, and the I/O
 * closes once a running install decode is done (raft_install.c). */
static void closeHeld(struct raft_io *io, raft_io_close_cb cb) {
  catga_raft *h = catga_raft_of_io(io);
  catga_deferred_cancel(h);
  catga_install_free_held(h);
  if (catga_install_close_waits(h, cb)) {
    return;
  }
  h->inner_close(io, cb);
}

/* ---------------------------------------------------------------- memory */

void *catga_raft_malloc(size_t size) { return raft_malloc(size); }

/* ---------------------------------------------------------------- FSM glue */

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                    void **result) {
  catga_raft *h = fsm->data;
  /* libraft advances last_applied right after this call returns. */
  uint64_t index = (uint64_t)raft_last_applied(h->r) + 1;
  *result = NULL; /* results travel through the C++ side, keyed by index */
  return h->cb.apply(h->cb.ctx, index, buf->base, buf->len);
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
  h->fsm.snapshot = catga_deferred_fsm_snapshot;
  h->fsm.restore = fsmRestore;
  h->fsm.snapshot_finalize = catga_deferred_fsm_finalize;
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
    catga_snapshot_send_reconnected(h, id);
    catga_peer_link_connected(h, id, stream);
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
  h->turned_at = uv_now(&h->loop);
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

/* Raft has closed: the I/O and the transport go next (the loop ends once
 * their handles closed). */
static void raftClosed(struct raft *r) {
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
      (config->secret_file != NULL && config->secret_file[0] != '\0') ||
      (config->tls_cert_file != NULL && config->tls_cert_file[0] != '\0')) {
    struct catga_auth_options auth = {
        .secret = config->secret,
        .secret_len = config->secret_len,
        .accepted = config->accepted_secrets,
        .n_accepted = config->n_accepted_secrets,
        .secret_file = config->secret_file,
        .cluster_id = config->cluster_id,
        .handshake_timeout_ms = config->handshake_timeout_ms,
        .max_pending = 64,
        .log = transportRefused,
        .log_ctx = h,
        .tls_ca_file = config->tls_ca_file,
        .tls_cert_file = config->tls_cert_file,
        .tls_key_file = config->tls_key_file,
        .tls_crl_file = config->tls_crl_file,
        .tls_label = config->tls_label,
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

/* A node's libraft memory (the log above all) comes from regions the snapshot
 * child's fork leaves out (fork_excluded_heap.hpp): freeing the log behind a
 * snapshot then writes no page the fork write-protected. Installed once per
 * process, before the first node allocates; blocks from before (malloc's) are
 * still freed by malloc. Test fixtures (attached mode) keep libraft's default. */
static struct raft_heap forkExcludedHeap = {
    NULL, catga_fx_malloc, catga_fx_free, catga_fx_calloc, catga_fx_realloc, NULL, NULL};
static pthread_once_t forkExcludedHeapOnce = PTHREAD_ONCE_INIT;

static void *defaultAlignedAlloc(void *data, size_t alignment, size_t size) {
  (void)data;
  return aligned_alloc(alignment, size);
}
static void defaultAlignedFree(void *data, size_t alignment, void *ptr) {
  (void)data;
  (void)alignment;
  free(ptr);
}
static void installForkExcludedHeap(void) {
  /* CATGA_RAFT_HEAP=malloc keeps libraft's own heap (malloc), so a memory
   * checker (AddressSanitizer, valgrind) sees every block libraft allocates
   * and frees; the install tests run so under ASan (docs/performance.md). */
  const char *heap = getenv("CATGA_RAFT_HEAP");
  if (heap != NULL && strcmp(heap, "malloc") == 0) {
    return;
  }
  forkExcludedHeap.aligned_alloc = defaultAlignedAlloc;
  forkExcludedHeap.aligned_free = defaultAlignedFree;
  raft_heap_set(&forkExcludedHeap);
}

int catga_raft_open(const struct catga_raft_config *config,
                    const struct catga_raft_callbacks *callbacks,
                    catga_raft **out, char *errmsg, size_t errmsg_len) {
  catga_raft *h;
  int rv;
  unsigned i;

  *out = NULL;
  pthread_once(&forkExcludedHeapOnce, installForkExcludedHeap);
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
  h->io.snapshot_put = catga_deferred_put;
  h->inner_close = h->io.close;
  h->io.close = closeHeld;
  h->inner_send = h->io.send;
  h->io.send = catga_snapshot_send;
  h->inner_snapshot_get = h->io.snapshot_get;
  h->io.snapshot_get = catga_snapshot_get;
  rv = catga_address_book_init(&h->book, config->address_book,
                               config->n_address_book);
  if (rv != 0) {
    snprintf(errmsg, errmsg_len, "address book: %s", raft_strerror(rv));
  }
  raft_set_election_timeout(h->r, config->election_timeout_ms);
  raft_set_heartbeat_timeout(h->r, config->heartbeat_ms);
  raft_set_snapshot_threshold(h->r, config->snapshot_threshold);
  raft_set_snapshot_trailing(h->r, config->snapshot_trailing);
  raft_set_pre_vote(h->r, true);
  /* A member being promoted is dropped from its catch-up when one round takes
   * longer than this (libraft's default: 5 s), and a round that starts with a
   * snapshot install lasts as long as the install: let it take as long as
   * libraft lets an install take before sending the snapshot again. */
  raft_set_max_catch_up_round_duration(h->r, h->r->install_snapshot_timeout);

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
      /* libraft 0.22.1 leaves a listen failure's message (the port taken)
       * in the transport's errmsg only. */
      snprintf(errmsg, errmsg_len, "%s",
               raft_errmsg(h->r)[0]       ? raft_errmsg(h->r)
               : h->transport.errmsg[0] ? h->transport.errmsg
                                        : raft_strerror(rv));
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
    raft_close(h->r, raftClosed);
    drainLoop(h);
    catga_address_book_clear(&h->book);
    free(h);
    return rv;
  }
  *out = h;
  return 0;
}

void catga_raft_run(catga_raft *h) { uv_run(&h->loop, UV_RUN_DEFAULT); }

void catga_raft_wake(catga_raft *h) { uv_async_send(&h->async); }

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
  raft_close(h->r, raftClosed);
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
  catga_snapshot_sends_free(h);
  catga_peer_links_free(&h->peer_links);
  catga_address_book_clear(&h->book);
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

/* Every request: libraft's struct first (its callback gets a pointer to it,
 * which is then a pointer to the whole), then who asked. */
struct request {
  union {
    struct raft_apply apply;
    struct raft_barrier barrier;
    struct raft_change change;
    struct raft_transfer transfer;
  } req;
  catga_raft *h;
  void *ctx;
};

/* Check and allocate: RAFT_SHUTDOWN once closing, RAFT_NOMEM, or 0 with *out
 * a zeroed request of `req_ctx`. */
static int requestNew(catga_raft *h, void *req_ctx, struct request **out) {
  struct request *q;
  *out = NULL;
  if (h->closing) {
    return RAFT_SHUTDOWN;
  }
  q = raft_malloc(sizeof *q);
  if (q == NULL) {
    return RAFT_NOMEM;
  }
  memset(q, 0, sizeof *q);
  q->h = h;
  q->ctx = req_ctx;
  *out = q;
  return 0;
}

/* After the libraft call that took `q`: a refused request is freed (no
 * callback will come). Returns `rv`. */
static int requestStarted(struct request *q, int rv) {
  if (rv != 0) {
    raft_free(q);
  }
  return rv;
}

/* In the completion: frees `req` (a struct request) and returns its handle
 * and context. */
static catga_raft *requestDone(void *req, void **ctx) {
  struct request *q = req;
  catga_raft *h = q->h;
  *ctx = q->ctx;
  raft_free(q);
  return h;
}

static void applyCb(struct raft_apply *req, int status, void *result) {
  uint64_t index = req->index;
  void *ctx;
  catga_raft *h = requestDone(req, &ctx);
  (void)result;
  h->cb.apply_done(h->cb.ctx, ctx, index, status);
}

int catga_raft_apply(catga_raft *h, void *data, size_t len, void *req_ctx,
                     uint64_t *index) {
  struct request *q;
  struct raft_buffer buf;
  int rv = requestNew(h, req_ctx, &q);
  if (rv != 0) {
    raft_free(data);
    return rv;
  }
  buf.base = data;
  buf.len = len;
  rv = requestStarted(q, raft_apply(h->r, &q->req.apply, &buf, 1, applyCb));
  if (rv != 0) {
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
  *index = q->req.apply.index;
  return 0;
}

static void barrierCb(struct raft_barrier *req, int status) {
  uint64_t index = req->index;
  void *ctx;
  catga_raft *h = requestDone(req, &ctx);
  h->cb.barrier_done(h->cb.ctx, ctx, index, status);
}

int catga_raft_barrier(catga_raft *h, void *req_ctx) {
  struct request *q;
  int rv = requestNew(h, req_ctx, &q);
  return rv != 0 ? rv
                 : requestStarted(q, raft_barrier(h->r, &q->req.barrier,
                                                  barrierCb));
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

static void changeCb(struct raft_change *req, int status) {
  void *ctx;
  catga_raft *h = requestDone(req, &ctx);
  h->cb.change_done(h->cb.ctx, ctx, status);
}

int catga_raft_add(catga_raft *h, uint64_t id, const char *address,
                   void *req_ctx) {
  struct request *q;
  int rv = requestNew(h, req_ctx, &q);
  return rv != 0 ? rv
                 : requestStarted(q, raft_add(h->r, &q->req.change, id,
                                              address, changeCb));
}

int catga_raft_assign(catga_raft *h, uint64_t id, int role, void *req_ctx) {
  struct request *q;
  int rv = requestNew(h, req_ctx, &q);
  return rv != 0 ? rv
                 : requestStarted(q, raft_assign(h->r, &q->req.change, id,
                                                 roleToRaft(role), changeCb));
}

int catga_raft_remove(catga_raft *h, uint64_t id, void *req_ctx) {
  struct request *q;
  int rv = requestNew(h, req_ctx, &q);
  return rv != 0 ? rv
                 : requestStarted(q, raft_remove(h->r, &q->req.change, id,
                                                 changeCb));
}

static void transferCb(struct raft_transfer *req) {
  void *ctx;
  catga_raft *h = requestDone(req, &ctx);
  h->cb.transfer_done(h->cb.ctx, ctx);
}

int catga_raft_transfer(catga_raft *h, uint64_t id, void *req_ctx) {
  struct request *q;
  int rv = requestNew(h, req_ctx, &q);
  return rv != 0 ? rv
                 : requestStarted(q, raft_transfer(h->r, &q->req.transfer, id,
                                                   transferCb));
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
  info->snapshot_terms_corrected = h->snapshot_terms_corrected;
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
  raft_close(&h->raft, raftClosed);
  drainLoop(h);
  free(h);
  return rv;
}
