#include "fixture_harness.h"

#include "support/fixture_guard.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdlib.h>
#include <string.h>

struct catga_fixture {
  struct raft_fixture fixture;
};

/* Every server's I/O passes received messages through the product's
 * catga_raft_drop_unsafe_install, as RaftNode's node mode does, unless a test
 * turns it off to show what it prevents. */
bool catga_fixture_guard_installs = true;

catga_fixture *catga_fixture_new(void **fsms, unsigned n, unsigned snapshot_threshold,
                                 unsigned snapshot_trailing) {
  catga_fixture *f = calloc(1, sizeof *f);
  struct raft_configuration conf;
  unsigned i;
  if (f == NULL || raft_fixture_init(&f->fixture) != 0) {
    free(f);
    return NULL;
  }
  for (i = 0; i < n; i++) {
    if (raft_fixture_grow(&f->fixture, fsms[i]) != 0) {
      catga_fixture_close_guarded(&f->fixture);
      free(f);
      return NULL;
    }
    if (getenv("LIBRAFT_TRACE") == NULL) {
      raft_fixture_get(&f->fixture, i)->tracer = NULL; /* quiet unless asked */
    }
    raft_set_snapshot_threshold(raft_fixture_get(&f->fixture, i), snapshot_threshold);
    raft_set_snapshot_trailing(raft_fixture_get(&f->fixture, i), snapshot_trailing);
    if (catga_fixture_guard_installs) catga_fixture_guard(raft_fixture_get(&f->fixture, i));
  }
  if (raft_fixture_configuration(&f->fixture, n, &conf) != 0) {
    catga_fixture_close_guarded(&f->fixture);
    free(f);
    return NULL;
  }
  if (raft_fixture_bootstrap(&f->fixture, &conf) != 0 || raft_fixture_start(&f->fixture) != 0) {
    raft_configuration_close(&conf);
    catga_fixture_close_guarded(&f->fixture);
    free(f);
    return NULL;
  }
  raft_configuration_close(&conf);
  return f;
}

void catga_fixture_close(catga_fixture *f) {
  catga_fixture_close_guarded(&f->fixture);
  free(f);
}

void *catga_fixture_raft(catga_fixture *f, unsigned i) { return raft_fixture_get(&f->fixture, i); }
void catga_fixture_elect(catga_fixture *f, unsigned i) { raft_fixture_elect(&f->fixture, i); }
void catga_fixture_depose(catga_fixture *f) { raft_fixture_depose(&f->fixture); }
unsigned catga_fixture_leader_index(catga_fixture *f) { return raft_fixture_leader_index(&f->fixture); }
void catga_fixture_step(catga_fixture *f) { raft_fixture_step(&f->fixture); }
bool catga_fixture_step_until_applied(catga_fixture *f, unsigned i, uint64_t index, unsigned max_msecs) {
  return raft_fixture_step_until_applied(&f->fixture, i, index, max_msecs);
}
bool catga_fixture_step_until_has_leader(catga_fixture *f, unsigned max_msecs) {
  return raft_fixture_step_until_has_leader(&f->fixture, max_msecs);
}
void catga_fixture_step_until_elapsed(catga_fixture *f, unsigned msecs) {
  raft_fixture_step_until_elapsed(&f->fixture, msecs);
}
void catga_fixture_kill(catga_fixture *f, unsigned i) { raft_fixture_kill(&f->fixture, i); }
void catga_fixture_revive(catga_fixture *f, unsigned i) { raft_fixture_revive(&f->fixture, i); }
void catga_fixture_set_disk_latency(catga_fixture *f, unsigned i, unsigned msecs) {
  raft_fixture_set_disk_latency(&f->fixture, i, msecs);
}
void catga_fixture_disconnect(catga_fixture *f, unsigned i, unsigned j) {
  raft_fixture_disconnect(&f->fixture, i, j);
}
void catga_fixture_reconnect(catga_fixture *f, unsigned i, unsigned j) {
  raft_fixture_reconnect(&f->fixture, i, j);
}
void catga_fixture_saturate(catga_fixture *f, unsigned i, unsigned j) {
  raft_fixture_saturate(&f->fixture, i, j);
}
void catga_fixture_desaturate(catga_fixture *f, unsigned i, unsigned j) {
  raft_fixture_desaturate(&f->fixture, i, j);
}
unsigned long catga_fixture_skipped_appends(catga_fixture *f, unsigned i) {
  return catga_fixture_guard_skipped_appends(raft_fixture_get(&f->fixture, i));
}
uint64_t catga_fixture_last_applied(catga_fixture *f, unsigned i) {
  return raft_last_applied(raft_fixture_get(&f->fixture, i));
}
uint64_t catga_fixture_n_install_snapshot_recv(catga_fixture *f, unsigned i) {
  return raft_fixture_n_recv(&f->fixture, i, RAFT_INSTALL_SNAPSHOT);
}

static void rawApplyCb(struct raft_apply *req, int status, void *result) {
  (void)status;
  (void)result;
  raft_free(req);
}

int catga_fixture_apply_raw(catga_fixture *f, unsigned i, const void *data, size_t len) {
  struct raft_apply *req = raft_malloc(sizeof *req);
  size_t padded = (len + 7) & ~(size_t)7;
  struct raft_buffer buf;
  int rv;
  buf.base = raft_calloc(1, padded == 0 ? 8 : padded);
  buf.len = padded == 0 ? 8 : padded;
  memcpy(buf.base, data, len);
  rv = raft_apply(raft_fixture_get(&f->fixture, i), req, &buf, 1, rawApplyCb);
  if (rv != 0) {
    raft_free(req);
    raft_free(buf.base);
  }
  return rv;
}
