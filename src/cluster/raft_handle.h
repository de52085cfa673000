/* src/cluster/raft_handle.h — the handle behind raft_c.h's opaque catga_raft.
 *
 * Internal to the C door to libraft: raft_c.c (life cycle, FSM glue,
 * requests) and its pieces — raft_deferred_snapshot.c (the snapshots a node
 * takes itself: placeholder, held-back write, worker hand-off),
 * raft_install.c (the receiving side of InstallSnapshot), raft_snapshot_send.c (the sending side),
 * raft_address_book.c (the address each peer is dialled at) and
 * raft_peer_link.c (the connection to each peer, reset when dead) — include
 * it; nothing else does (it includes raft.h, which does not compile as C++).
 * Threading is raft_c.h's: everything runs on the handle's loop thread. */
#ifndef CATGA_SRC_CLUSTER_RAFT_HANDLE_H
#define CATGA_SRC_CLUSTER_RAFT_HANDLE_H

#include "cluster/raft_address_book.h"
#include "cluster/raft_c.h"
#include "cluster/raft_peer_link.h"
#include "cluster/raft_snapshot_send.h"

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct snapshotSend; /* raft_snapshot_send.c */
struct snapshotGet;  /* raft_snapshot_send.c */

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
  /* The I/O's own start, wrapped so received messages pass the guard and a
   * member waiting to be added never times out into an election. */
  int (*inner_start)(struct raft_io *, unsigned, raft_io_tick_cb,
                     raft_io_recv_cb);
  raft_io_recv_cb inner_recv;
  raft_io_tick_cb inner_tick;
  /* The I/O's own send, wrapped to take addresses from the address book. */
  int (*inner_send)(struct raft_io *, struct raft_io_send *,
                    const struct raft_message *, raft_io_send_cb);
  struct catga_address_book book;
  /* The outbound connection to each peer (raft_peer_link.c), and uv_now()
   * at the end of the loop's last turn (checkCb). */
  struct catga_peer_links peer_links;
  uint64_t turned_at;
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
  /* A snapshot installed from the leader (raft_install.c): its write and its
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
  /* InstallSnapshot messages on their way to a follower, and the reads of
   * the snapshot for them, one at a time (raft_snapshot_send.c). */
  struct snapshotSend *snapshot_sends;
  int (*inner_snapshot_get)(struct raft_io *, struct raft_io_snapshot_get *,
                            raft_io_snapshot_get_cb);
  struct snapshotGet *snapshot_gets; /* the first is being read */
  uint64_t snapshots_sent;
  uint64_t snapshot_sends_skipped;
  /* InstallSnapshots whose term catga_install_names_its_snapshot corrected. */
  uint64_t snapshot_terms_corrected;
  /* The snapshot being handed to libraft's snapshot_get callback: the
   * InstallSnapshot sent from it must name its term (raft_snapshot_send.h). */
  struct catga_install_read install_read;
  /* An InstallSnapshot that arrived while this follower could not take it
   * (raft_install.c); delivered once it can, replacing the drop. */
  struct raft_message *held_install;
  /* A member waiting to be added (catga_raft_set_refuse_votes). */
  bool refuse_votes;
  /* The first Raft message from another cluster that lists this node, which
   * bootstrapped alone (raft_foreign.h): dropped, and remembered here. */
  struct {
    bool seen;
    uint64_t id;
    uint64_t term;
    uint64_t own_term;
    char address[256];
  } foreign;
  /* Snapshots held back for an applied configuration entry libraft has not
   * recorded yet (raft_deferred_snapshot.c): its index, and how many. */
  uint64_t config_wait_index;
  unsigned config_wait_refusals;
  struct raft raft;
};

/* The handle whose I/O is `io` (every wrapped raft_io function gets it). */
static inline catga_raft *catga_raft_of_io(struct raft_io *io) {
  return (catga_raft *)(void *)((char *)io - offsetof(catga_raft, io));
}

#endif /* CATGA_SRC_CLUSTER_RAFT_HANDLE_H */
