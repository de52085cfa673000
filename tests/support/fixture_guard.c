#include "support/fixture_guard.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/raft_c.h"
#include "cluster/raft_change_index.h"
#include "cluster/raft_snapshot_send.h"

enum { kMaxGuarded = 64, kMaxPendingInstalls = 4 };

/* An installed snapshot's put, between its submission and its completion. */
struct pending_install {
  struct raft_io_snapshot_put *req;
  raft_io_snapshot_put_cb cb;
  raft_index index;
};

/* The fixture's I/O keeps no room for us: a small table from io to what the
 * wrappers need. Tests are single-threaded around the fixture. */
static struct {
  struct raft_io *io;
  struct raft *raft;
  int (*start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
  int (*truncate)(struct raft_io *, raft_index);
  int (*snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *, const struct raft_snapshot *,
                      raft_io_snapshot_put_cb);
  int (*send)(struct raft_io *, struct raft_io_send *, const struct raft_message *, raft_io_send_cb);
  int (*snapshot_get)(struct raft_io *, struct raft_io_snapshot_get *, raft_io_snapshot_get_cb);
  raft_io_recv_cb recv;
  /* AppendEntries catga_raft_skip_snapshotted_entries rewrote. */
  unsigned long skipped_appends;
  /* The snapshot being handed to libraft's snapshot_get callback, and the
   * InstallSnapshot messages made to name its term
   * (catga_install_names_its_snapshot). */
  struct catga_install_read install_read;
  unsigned long install_terms_fixed;
  /* The index of the last entry before the fixture's entry array (the last
   * installed snapshot's; 0 before any install). */
  raft_index offset;
  struct pending_install installs[kMaxPendingInstalls];
} guarded[kMaxGuarded];

static int slotOf(const struct raft_io *io) {
  int i;
  for (i = 0; i < kMaxGuarded; i++) {
    if (guarded[i].io == io) return i;
  }
  return -1;
}

static void recvGuarded(struct raft_io *io, struct raft_message *message) {
  int i = slotOf(io);
  if (catga_raft_drop_unsafe_install(guarded[i].raft, message)) return;
  catga_raft_answer_stale_install(guarded[i].raft, message);
  if (catga_raft_skip_snapshotted_entries(guarded[i].raft, message)) guarded[i].skipped_appends++;
  catga_raft_change_entry_first(message);
  guarded[i].recv(io, message);
}

static int startGuarded(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  int i = slotOf(io);
  guarded[i].recv = recv;
  return guarded[i].start(io, msecs, tick, recvGuarded);
}

/* libraft 0.22.1's fixture I/O (src/fixture.c) keeps its persisted entries in
 * an array and, once a snapshot was installed (trailing 0), the index before
 * that array in `start_index`; but ioMethodTruncate keeps `index - 1` entries
 * as if the array began at index 1. A truncation after an install therefore
 * keeps too many entries and, when `index - 1` exceeds the array, copies past
 * its end (heap-buffer-overflow; later garbage pointers are freed in
 * raft_fixture_close). Repaired here without touching the fixture's
 * internals: an install is handed to the fixture with trailing 1, so it never
 * sets `start_index`, and completes here by emptying the array (truncate from
 * 1, right while `start_index` is 0) and remembering the snapshot's index as
 * the array's offset; every truncation is then translated by that offset. */
static int truncateGuarded(struct raft_io *io, raft_index index) {
  int i = slotOf(io);
  const raft_index offset = guarded[i].offset;
  return guarded[i].truncate(io, index > offset ? index - offset : 1);
}

/* The fixture flushed an installed snapshot's put (or closes with it
 * pending): on success the array is emptied and the offset moves, before
 * libraft hears of it, as the fixture itself would do for trailing 0. */
static void installPutCb(struct raft_io_snapshot_put *req, int status) {
  int i, k;
  for (i = 0; i < kMaxGuarded; i++) {
    for (k = 0; k < kMaxPendingInstalls; k++) {
      struct pending_install *p = &guarded[i].installs[k];
      raft_io_snapshot_put_cb cb;
      if (p->req != req) continue;
      cb = p->cb;
      if (status == 0) {
        /* The fixture asserts on this truncation too: it fails only under an
         * injected disk fault, which libraft's completion could not report. */
        if (guarded[i].truncate(guarded[i].io, 1) != 0) abort();
        guarded[i].offset = p->index;
      }
      memset(p, 0, sizeof *p);
      req->cb = cb;
      cb(req, status);
      return;
    }
  }
  abort(); /* a put this guard never saw */
}

static int snapshotPutGuarded(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                              const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb) {
  int i = slotOf(io), k, rv;
  struct pending_install *p = NULL;
  if (trailing != 0) return guarded[i].snapshot_put(io, trailing, req, snapshot, cb); /* its own snapshot */
  for (k = 0; k < kMaxPendingInstalls && p == NULL; k++) {
    if (guarded[i].installs[k].req == NULL) p = &guarded[i].installs[k];
  }
  if (p == NULL) abort(); /* more installs in flight than libraft ever starts */
  p->req = req;
  p->cb = cb;
  p->index = snapshot->index;
  rv = guarded[i].snapshot_put(io, 1, req, snapshot, installPutCb);
  if (rv != 0) memset(p, 0, sizeof *p);
  return rv;
}

/* A snapshot read for an InstallSnapshot, between its submission and its
 * completion (the fixture completes every pending request when it closes). */
struct guarded_get {
  struct raft_io_snapshot_get inner; /* handed to the fixture in libraft's stead */
  struct raft_io_snapshot_get *outer;
  raft_io_snapshot_get_cb cb;
  int slot;
};

static void snapshotGotGuarded(struct raft_io_snapshot_get *inner, struct raft_snapshot *snapshot, int status) {
  struct guarded_get *g = inner->data;
  struct raft_io_snapshot_get *outer = g->outer;
  raft_io_snapshot_get_cb cb = g->cb;
  struct catga_install_read *reading = &guarded[g->slot].install_read;
  free(g);
  outer->cb = cb;
  catga_install_read_begin(reading, status == 0 ? snapshot : NULL);
  cb(outer, snapshot, status);
  catga_install_read_end(reading);
}

static int snapshotGetGuarded(struct raft_io *io, struct raft_io_snapshot_get *req, raft_io_snapshot_get_cb cb) {
  int i = slotOf(io), rv;
  struct guarded_get *g = malloc(sizeof *g);
  if (g == NULL) return RAFT_NOMEM;
  memset(g, 0, sizeof *g);
  g->inner.data = g;
  g->outer = req;
  g->cb = cb;
  g->slot = i;
  rv = guarded[i].snapshot_get(io, &g->inner, snapshotGotGuarded);
  if (rv != 0) free(g);
  return rv;
}

/* The fixture's send copies the message before it returns. */
static int sendGuarded(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                       raft_io_send_cb cb) {
  int i = slotOf(io);
  struct raft_message fixed;
  const struct raft_message *m = catga_install_names_its_snapshot(&guarded[i].install_read, message, &fixed);
  if (m != message) guarded[i].install_terms_fixed++;
  return guarded[i].send(io, req, m, cb);
}

void catga_fixture_guard(struct raft *r) {
  int i = slotOf(r->io); /* an io at the address of one never unguarded */
  if (i < 0) i = slotOf(NULL);
  if (i < 0) abort(); /* more live guarded servers than the table holds */
  memset(&guarded[i], 0, sizeof guarded[i]);
  guarded[i].io = r->io;
  guarded[i].raft = r;
  guarded[i].start = r->io->start;
  guarded[i].truncate = r->io->truncate;
  guarded[i].snapshot_put = r->io->snapshot_put;
  guarded[i].send = r->io->send;
  guarded[i].snapshot_get = r->io->snapshot_get;
  r->io->start = startGuarded;
  r->io->truncate = truncateGuarded;
  r->io->snapshot_put = snapshotPutGuarded;
  r->io->send = sendGuarded;
  r->io->snapshot_get = snapshotGetGuarded;
}

void catga_fixture_close_guarded(struct raft_fixture *fixture) {
  struct raft_io *ios[RAFT_FIXTURE_MAX_SERVERS];
  unsigned n = raft_fixture_n(fixture);
  unsigned i;
  for (i = 0; i < n; i++) ios[i] = raft_fixture_get(fixture, i)->io;
  raft_fixture_close(fixture);
  for (i = 0; i < n; i++) {
    int slot = slotOf(ios[i]);
    if (slot >= 0) memset(&guarded[slot], 0, sizeof guarded[slot]);
  }
}

unsigned long catga_fixture_guard_skipped_appends(const struct raft *r) {
  int i = slotOf(r->io);
  return i < 0 ? 0 : guarded[i].skipped_appends;
}

unsigned long catga_fixture_guard_install_terms_fixed(const struct raft *r) {
  int i = slotOf(r->io);
  return i < 0 ? 0 : guarded[i].install_terms_fixed;
}
