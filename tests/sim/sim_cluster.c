#include "sim_cluster.h"

#include "support/fixture_guard.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>

#define SIM_MAX_SERVERS 8

struct sim_tracer {
  struct raft_tracer tracer;
  struct sim_cluster *c;
  unsigned i;
};

struct sim_cluster {
  struct raft_fixture f;
  struct sim_tracer tracers[SIM_MAX_SERVERS];
  sim_trace_cb trace;
  void *trace_ctx;
  bool print;
};

static void traceEmit(struct raft_tracer *t, int type, const void *info) {
  struct sim_tracer *st = (struct sim_tracer *)t;
  const struct raft_tracer_info *i = info;
  if (type != RAFT_TRACER_DIAGNOSTIC || i->diagnostic.message == NULL) return;
  if (st->c->print) {
    fprintf(stderr, "[%llu] %u: %s\n", (unsigned long long)raft_fixture_time(&st->c->f), st->i + 1,
            i->diagnostic.message);
  }
  st->c->trace(st->c->trace_ctx, st->i, i->diagnostic.message);
}

sim_cluster *sim_cluster_new(void **fsms, unsigned n, unsigned snapshot_threshold, unsigned snapshot_trailing,
                             const unsigned *election_ms, sim_trace_cb trace, void *trace_ctx) {
  sim_cluster *c = calloc(1, sizeof *c);
  struct raft_configuration conf;
  unsigned i;
  if (c == NULL) return NULL;
  if (n > SIM_MAX_SERVERS) {
    free(c);
    return NULL;
  }
  c->trace = trace;
  c->trace_ctx = trace_ctx;
  c->print = getenv("LIBRAFT_TRACE") != NULL;
  if (raft_fixture_init(&c->f) != 0) {
    free(c);
    return NULL;
  }
  for (i = 0; i < n; i++) {
    struct raft *r;
    if (raft_fixture_grow(&c->f, fsms[i]) != 0) goto fail;
    r = raft_fixture_get(&c->f, i);
    c->tracers[i].tracer.version = 2;
    c->tracers[i].tracer.emit = traceEmit;
    c->tracers[i].c = c;
    c->tracers[i].i = i;
    r->tracer = &c->tracers[i].tracer;
    raft_set_snapshot_threshold(r, snapshot_threshold);
    raft_set_snapshot_trailing(r, snapshot_trailing);
    raft_set_pre_vote(r, true); /* as RaftNode::start configures real nodes */
    catga_fixture_guard(r);     /* and its I/O's received-message guard */
    raft_fixture_set_randomized_election_timeout(&c->f, i, election_ms[i]);
  }
  if (raft_fixture_configuration(&c->f, n, &conf) != 0) goto fail;
  if (raft_fixture_bootstrap(&c->f, &conf) != 0 || raft_fixture_start(&c->f) != 0) {
    raft_configuration_close(&conf);
    goto fail;
  }
  raft_configuration_close(&conf);
  return c;
fail:
  catga_fixture_close_guarded(&c->f);
  free(c);
  return NULL;
}

void sim_cluster_close(sim_cluster *c) {
  catga_fixture_close_guarded(&c->f);
  free(c);
}

void *sim_raft(sim_cluster *c, unsigned i) { return raft_fixture_get(&c->f, i); }
void sim_step(sim_cluster *c) { raft_fixture_step(&c->f); }
uint64_t sim_time(sim_cluster *c) { return raft_fixture_time(&c->f); }
int sim_state(sim_cluster *c, unsigned i) { return (int)raft_state(raft_fixture_get(&c->f, i)); }
uint64_t sim_term(sim_cluster *c, unsigned i) { return raft_fixture_get(&c->f, i)->current_term; }
uint64_t sim_last_applied(sim_cluster *c, unsigned i) { return raft_last_applied(raft_fixture_get(&c->f, i)); }
bool sim_alive(sim_cluster *c, unsigned i) { return raft_fixture_alive(&c->f, i); }
unsigned long sim_skipped_appends(sim_cluster *c, unsigned i) {
  return catga_fixture_guard_skipped_appends(raft_fixture_get(&c->f, i));
}
unsigned long sim_install_terms_fixed(sim_cluster *c, unsigned i) {
  return catga_fixture_guard_install_terms_fixed(raft_fixture_get(&c->f, i));
}
void sim_kill(sim_cluster *c, unsigned i) { raft_fixture_kill(&c->f, i); }
void sim_revive(sim_cluster *c, unsigned i) { raft_fixture_revive(&c->f, i); }
void sim_disconnect(sim_cluster *c, unsigned i, unsigned j) {
  raft_fixture_disconnect(&c->f, i, j);
  raft_fixture_disconnect(&c->f, j, i);
}
void sim_reconnect(sim_cluster *c, unsigned i, unsigned j) {
  raft_fixture_reconnect(&c->f, i, j);
  raft_fixture_reconnect(&c->f, j, i);
}
void sim_saturate(sim_cluster *c, unsigned i, unsigned j) { raft_fixture_saturate(&c->f, i, j); }
void sim_desaturate(sim_cluster *c, unsigned i, unsigned j) { raft_fixture_desaturate(&c->f, i, j); }
void sim_io_fault(sim_cluster *c, unsigned i, int delay, int repeat) { raft_fixture_io_fault(&c->f, i, delay, repeat); }
void sim_network_latency(sim_cluster *c, unsigned i, unsigned msecs) {
  raft_fixture_set_network_latency(&c->f, i, msecs);
}
void sim_disk_latency(sim_cluster *c, unsigned i, unsigned msecs) { raft_fixture_set_disk_latency(&c->f, i, msecs); }
void sim_election_timeout(sim_cluster *c, unsigned i, unsigned msecs) {
  raft_fixture_set_randomized_election_timeout(&c->f, i, msecs);
}
