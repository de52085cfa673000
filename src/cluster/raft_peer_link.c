/* src/cluster/raft_peer_link.c — the leader's connection to each peer
 * (raft_peer_link.h). */
#include "cluster/raft_peer_link.h"
#include "cluster/raft_handle.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

static struct catga_peer_link *linkOf(struct catga_peer_links *links,
                                      raft_id id, bool add) {
  struct catga_peer_link *grown;
  unsigned i;
  for (i = 0; i < links->n; i++) {
    if (links->links[i].id == id) {
      return &links->links[i];
    }
  }
  if (!add) {
    return NULL;
  }
  grown = realloc(links->links, (links->n + 1) * sizeof *grown);
  if (grown == NULL) {
    return NULL;
  }
  links->links = grown;
  memset(&grown[links->n], 0, sizeof grown[links->n]);
  grown[links->n].id = id;
  grown[links->n].fd = -1;
  return &grown[links->n++];
}

void catga_peer_link_connected(catga_raft *h, raft_id id,
                               struct uv_stream_s *stream) {
  struct catga_peer_link *link = linkOf(&h->peer_links, id, true);
  uv_os_fd_t fd;
  struct stat st;
  if (link == NULL) {
    return; /* out of memory: this connection is just not reset later */
  }
  link->fd = -1;
  if (stream == NULL || uv_fileno((const uv_handle_t *)stream, &fd) != 0 ||
      fstat(fd, &st) != 0) {
    return;
  }
  link->fd = fd;
  link->dev = st.st_dev;
  link->ino = st.st_ino;
}

static bool isMember(const struct raft *r, raft_id id) {
  unsigned i;
  for (i = 0; i < r->configuration.n; i++) {
    if (r->configuration.servers[i].id == id) {
      return true;
    }
  }
  return false;
}

/* Shuts the recorded connection down if its descriptor is still that
 * socket (libraft closes a connection it dropped, and the number may have
 * gone to another socket since). */
static bool shutDown(struct catga_peer_link *link) {
  struct stat st;
  int fd = link->fd;
  link->fd = -1;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != link->dev ||
      st.st_ino != link->ino) {
    return false;
  }
  return shutdown(fd, SHUT_RDWR) == 0;
}

void catga_peer_link_received(catga_raft *h, const struct raft_message *m) {
  struct raft *r = h->r;
  struct catga_peer_link *link;
  uint64_t now;
  uint64_t timeout;
  bool closed;
  if (m->type != RAFT_REQUEST_VOTE || raft_state(r) != RAFT_LEADER ||
      m->request_vote.disrupt_leader || !isMember(r, m->server_id)) {
    return; /* a transfer's election, or a node that is not a member */
  }
  if (!m->request_vote.pre_vote && m->request_vote.term > r->current_term) {
    return; /* a newer term: this leader is the one behind, and steps down */
  }
  now = uv_now(&h->loop);
  timeout = r->election_timeout;
  if (h->turned_at != 0 && now - h->turned_at >= timeout) {
    /* This node itself did not run for an election timeout (stopped,
     * stalled): its silence, not the link, made the member ask. */
    return;
  }
  link = linkOf(&h->peer_links, m->server_id, true);
  if (link == NULL) {
    return;
  }
  if (link->reset_at != 0 && now - link->reset_at < 3 * timeout) {
    return;
  }
  if (catga_snapshot_send_holds(h, m->server_id)) {
    return;
  }
  closed = shutDown(link);
  link->reset_at = now;
  /* Said once per 100 election timeouts per member: a link that stays down
   * asks again every election timeout or two. */
  if (link->reported_at != 0 && now - link->reported_at < 100 * timeout) {
    return;
  }
  link->reported_at = now;
  if (h->cb.peer_link_reset != NULL) {
    h->cb.peer_link_reset(h->cb.ctx, m->server_id, raft_current_term(r),
                          closed ? 1 : 0);
  }
}

void catga_peer_links_free(struct catga_peer_links *links) {
  free(links->links);
  memset(links, 0, sizeof *links);
}
