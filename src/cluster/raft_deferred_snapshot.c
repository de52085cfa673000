/* src/cluster/raft_deferred_snapshot.c — the snapshots a node takes itself,
 * inline or deferred (raft_deferred_snapshot.h; the contract is raft_c.h's
 * "Deferred snapshots"). */
#include "cluster/raft_deferred_snapshot.h"
#include "cluster/raft_handle.h"
#include "cluster/raft_install.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---------------------------------------------------------------- FSM */

/* Whether the configuration libraft would write into a snapshot now may be
 * older than a configuration entry the snapshot covers. libraft 0.22.1
 * (src/legacy.c) writes its committed configuration, which it updates from
 * an applied configuration entry only when that entry is the one it holds
 * as uncommitted, and one event after applying it; it takes a snapshot at
 * the first check after an apply pass where everything committed is
 * applied. A pass that applied two configuration entries — a restart
 * applying a member's addition again (libraft restores the last entry as
 * uncommitted and the one before as committed: the member a spare), or a
 * follower that received the next change before it learnt that the previous
 * one committed — let the snapshot record the older configuration at an
 * index past the newer entry. Restored from that snapshot once the log
 * behind it is gone, or installed on a follower, the node had the older
 * configuration for good: as leader it sent nothing to a member it listed
 * as a spare (chaos seed 559162531). So no snapshot while a configuration
 * entry after the last snapshot is held as uncommitted: libraft asks again
 * at its next check — the next event of the same pass once the entry is
 * recorded, or once it commits. An entry held as uncommitted that the last
 * snapshot already covers is never applied again: it does not hold
 * snapshots back; nor, after 64 checks, does one applied that libraft
 * should have recorded at once (not expected: the log would grow). */
static bool configurationPending(catga_raft *h) {
  const struct raft *r = h->r;
  raft_index pending;
  if (r == NULL) {
    return false;
  }
  pending = r->configuration_uncommitted_index;
  if (pending == 0 || pending <= r->trail.snapshot.index) {
    h->config_wait_index = 0;
    return false;
  }
  if (pending > r->last_applied) {
    return true; /* committed and applied later, or rolled back */
  }
  if (h->config_wait_index != pending) {
    h->config_wait_index = pending;
    h->config_wait_refusals = 0;
  }
  return ++h->config_wait_refusals <= 64;
}

int catga_deferred_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                unsigned *n_bufs) {
  catga_raft *h = fsm->data;
  void *data = NULL;
  size_t len = 0;
  int rv;
  if (configurationPending(h)) {
    return RAFT_BUSY; /* libraft drops this attempt and checks again */
  }
  rv = h->cb.snapshot(h->cb.ctx, &data, &len);
  bool deferred = rv == CATGA_SNAPSHOT_DEFERRED;
  if (rv != 0 && !deferred) {
    return rv;
  }
  if (deferred) { /* catga_deferred_put holds libraft's write back */
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
int catga_deferred_fsm_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
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

/* ---------------------------------------------------------------- the write */

/* The snapshot the FSM deferred is held back until its bytes exist; an
 * install from the leader is decoded while it is written (raft_install.c); every
 * other write (inline snapshots) passes through. */
int catga_deferred_put(struct raft_io *io, unsigned trailing,
                       struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snapshot,
                       raft_io_snapshot_put_cb cb) {
  catga_raft *h = catga_raft_of_io(io);
  if (catga_install_is_leader_snapshot(h, snapshot)) {
    return catga_install_put(h, trailing, req, snapshot, cb);
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

void catga_deferred_cancel(catga_raft *h) {
  catga_raft_snapshot_unwatch(h);
  if (h->put.held) {
    struct raft_io_snapshot_put *req = h->put.req;
    h->put.held = false;
    if (h->cb.snapshot_cancel != NULL) {
      h->cb.snapshot_cancel(h->cb.ctx);
    }
    h->put.cb(req, RAFT_CANCELED);
  }
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

