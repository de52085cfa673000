/* src/cluster/raft_peer_link.h — the leader's connection to each peer, and
 * its reset when the peer shows that nothing sent on it arrives (pieces of
 * raft_c.c's handle, raft_handle.h; loop thread only).
 *
 * libraft's uv I/O keeps one outbound connection per peer and replaces it
 * only after a write fails. A connection can stay writable while delivering
 * nothing: the kernel takes the bytes, something on the way drops them and
 * resets nothing (a middlebox that lost its state, a proxy that kept a
 * connection it should have closed); TCP reports that after its retransmission
 * timeout, if ever. With pre-vote, the follower behind such a link is stuck
 * for that long: it asks for pre-votes in its own term + 1, its peers refuse
 * them (they have a leader) answering that same term, so it never learns of a
 * newer term; the leader keeps "sending" it heartbeats.
 *
 * The leader hears of it: a member's RequestVote reaches it while it leads,
 * which that member sends only after an election timeout without a message
 * from a leader. The leader then shuts the connection down (shutdown(2) on
 * its descriptor, checked to still be that socket): the next write fails,
 * libraft drops the connection and dials again, as after any network error.
 * At most once per three election timeouts per member, and never while an
 * InstallSnapshot is on its way to it (raft_snapshot_send.c: a follower
 * reading a large snapshot from the stream answers nothing meanwhile). */
#ifndef CATGA_SRC_CLUSTER_RAFT_PEER_LINK_H
#define CATGA_SRC_CLUSTER_RAFT_PEER_LINK_H

#include "cluster/raft_c.h"

#include <raft.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

/* One peer's outbound connection as last connected. */
struct catga_peer_link {
  raft_id id;
  int fd;          /* -1: none recorded (or reset since) */
  dev_t dev;       /* the socket's identity (fstat), so a reused */
  ino_t ino;       /* descriptor is never shut down */
  uint64_t reset_at;    /* uv_now() of the last reset; 0: never */
  uint64_t reported_at; /* of the last peer_link_reset call; 0: never */
};

struct catga_peer_links {
  struct catga_peer_link *links;
  unsigned n;
};

/* A connection to peer `id` was established (the transport's connect
 * callback, status 0): it is the one libraft now writes to. */
void catga_peer_link_connected(catga_raft *h, raft_id id,
                               struct uv_stream_s *stream);

/* Every received message passes here first: a RequestVote from a member
 * while this node leads resets the connection to it (see above), and tells
 * callbacks.peer_link_reset, at most once per 100 election timeouts per
 * member (also when no connection to it was open to be reset). Not when the loop itself did not turn for an election
 * timeout before this message (this node was stopped or stalled: the
 * request says that, not that the link is dead), nor for a vote of a term
 * above this leader's. */
void catga_peer_link_received(catga_raft *h, const struct raft_message *m);

void catga_peer_links_free(struct catga_peer_links *links);

#endif /* CATGA_SRC_CLUSTER_RAFT_PEER_LINK_H */
