#include "support/fixture_guard.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/raft_c.h"

enum { kMaxGuarded = 64 };

/* The fixture's I/O keeps no room for us: a small table from io to what the
 * wrappers need. Tests are single-threaded around the fixture. */
static struct {
  struct raft_io *io;
  struct raft *raft;
  int (*start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
  raft_io_recv_cb recv;
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
  guarded[i].recv(io, message);
}

static int startGuarded(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv) {
  int i = slotOf(io);
  guarded[i].recv = recv;
  return guarded[i].start(io, msecs, tick, recvGuarded);
}

void catga_fixture_guard(struct raft *r) {
  int i = slotOf(r->io); /* an io at the address of one never unguarded */
  if (i < 0) i = slotOf(NULL);
  if (i < 0) abort(); /* more live guarded servers than the table holds */
  guarded[i].io = r->io;
  guarded[i].raft = r;
  guarded[i].start = r->io->start;
  guarded[i].recv = NULL;
  r->io->start = startGuarded;
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
