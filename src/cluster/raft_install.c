/* src/cluster/raft_install.c — InstallSnapshot on the receiving side
 * (raft_install.h). */
#include "cluster/raft_install.h"
#include "cluster/raft_handle.h"

#include <stdlib.h>
#include <string.h>

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

int catga_raft_answer_stale_install(void *raft, void *message) {
  struct raft *r = raft;
  struct raft_message *m = message;
  if (m->type != RAFT_INSTALL_SNAPSHOT ||
      m->install_snapshot.last_index >= r->trail.snapshot.index) {
    return 0;
  }
  m->install_snapshot.last_index = r->trail.snapshot.index;
  m->install_snapshot.last_term = r->trail.snapshot.term;
  return 1;
}

/* Whether an InstallSnapshot must wait: libraft 0.22.1 ignores one that
 * arrives during an install ("already taking or installing snapshot") and
 * mishandles one during a snapshot of its own (catga_raft_drop_unsafe_install).
 * The leader sends a snapshot once (raft_snapshot_send.c), so the follower
 * keeps the newest such message and delivers it when that is over (raft_c.c,
 * checkCb). */
static bool installPending(const catga_raft *h) {
  return h->r->snapshot.installing || h->r->legacy.snapshot_taking ||
         h->install.busy;
}

/* The held message owns its configuration and data (as libraft would) and a
 * copy of the sender's address (the I/O's own string lives only as long as
 * the connection it came on). */
void catga_install_release_held(struct raft_message *m) {
  free((char *)m->server_address);
  free(m);
}

void catga_install_free_held(catga_raft *h) {
  if (h->held_install != NULL) {
    raft_configuration_close(&h->held_install->install_snapshot.conf);
    raft_free(h->held_install->install_snapshot.data.base);
    catga_install_release_held(h->held_install);
    h->held_install = NULL;
  }
}

struct raft_message *catga_install_take_held(catga_raft *h) {
  struct raft_message *m = h->held_install;
  if (m == NULL || installPending(h)) {
    return NULL;
  }
  h->held_install = NULL;
  return m;
}

bool catga_install_hold(catga_raft *h, struct raft_message *message) {
  if (message->type == RAFT_INSTALL_SNAPSHOT && installPending(h)) {
    struct raft_message *copy = malloc(sizeof *copy);
    char *address = message->server_address != NULL
                        ? strdup(message->server_address)
                        : NULL;
    if (copy != NULL && (address != NULL || message->server_address == NULL)) {
      *copy = *message;
      copy->server_address = address;
      catga_install_free_held(h);
      h->held_install = copy;
      return true;
    }
    free(copy);
    free(address);
  }
  return false;
}

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
int catga_install_put(catga_raft *h, unsigned trailing,
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

bool catga_install_is_leader_snapshot(const catga_raft *h,
                                      const struct raft_snapshot *snapshot) {
  return h->node_mode && h->cb.restore_prepare != NULL &&
         h->r->legacy.snapshot_install && !h->install.busy &&
         snapshot->n_bufs == 1 && snapshot->bufs[0].base != h->placeholder;
}

bool catga_install_close_waits(catga_raft *h, raft_io_close_cb cb) {
  if (!h->install.busy) {
    return false;
  }
  h->install.close_cb = cb; /* installMaybeDone closes once the decode is done */
  return true;
}
