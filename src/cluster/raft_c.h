/* src/cluster/raft_c.h — the only door to libraft.
 *
 * raft.h does not compile as C++, so every libraft (and raft/uv.h) call lives
 * in C: raft_c.c and the pieces that share its handle (raft_handle.h:
 * raft_deferred_snapshot.c, raft_install.c, raft_snapshot_send.c,
 * raft_address_book.c). This header is
 * plain C with extern "C" guards: an opaque handle, a typed callback table and
 * small request functions.
 *
 * Threading: nothing here is thread-safe except catga_raft_wake(). Everything
 * else, and every callback, runs on the thread that runs the handle's loop
 * (catga_raft_run), or — before that thread starts and after it ended — on
 * the thread that owns the handle.
 *
 * Two modes share the same FSM glue and request plumbing:
 *   - node mode (catga_raft_open): owns a libuv loop, the raft_uv I/O, the TCP
 *     transport (the authenticated one of raft_auth.c when a secret is set;
 *     wrapped so every connection gets TCP_NODELAY) and the raft;
 *     every message goes to the address this node's own address book gives
 *     for its destination (see catga_raft_config.address_book);
 *   - attached mode (catga_raft_glue_new + catga_raft_glue_attach): wraps a
 *     raft instance created by someone else, e.g. libraft's raft/fixture.h in
 *     deterministic tests. */
#ifndef CATGA_SRC_CLUSTER_RAFT_C_H
#define CATGA_SRC_CLUSTER_RAFT_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct catga_raft catga_raft;

/* libraft status codes the C++ side needs to distinguish (same values as
 * raft.h; raft_c.c checks that at compile time). */
enum {
  CATGA_RAFT_OK = 0,
  CATGA_RAFT_NOMEM = 1,
  CATGA_RAFT_BADID = 2,
  CATGA_RAFT_DUPLICATEID = 3,
  CATGA_RAFT_DUPLICATEADDRESS = 4,
  CATGA_RAFT_BADROLE = 5,
  CATGA_RAFT_MALFORMED = 6,
  CATGA_RAFT_NOTLEADER = 7,
  CATGA_RAFT_LEADERSHIPLOST = 8,
  CATGA_RAFT_SHUTDOWN = 9,
  CATGA_RAFT_CANTBOOTSTRAP = 10,
  CATGA_RAFT_CANTCHANGE = 11,
  CATGA_RAFT_CORRUPT = 12,
  CATGA_RAFT_CANCELED = 13,
  CATGA_RAFT_NAMETOOLONG = 14,
  CATGA_RAFT_TOOBIG = 15,
  CATGA_RAFT_NOCONNECTION = 16,
  CATGA_RAFT_BUSY = 17,
  CATGA_RAFT_IOERR = 18,
  CATGA_RAFT_NOTFOUND = 19,
  CATGA_RAFT_INVALID = 20,
  CATGA_RAFT_UNAUTHORIZED = 21,
  /* The leader refused an entry: this node or a majority of voters have less
   * than 4 MiB of log space preallocated (libraft's legacy capacity
   * threshold; see docs/guarantees.md, "Disk faults"). Nothing was appended. */
  CATGA_RAFT_NOSPACE = 22,
};

/* The snapshot callback's answer for "encoding elsewhere" (not a libraft code). */
enum { CATGA_SNAPSHOT_DEFERRED = 1000 };

/* Roles (catga values, mapped to libraft's in raft_c.c). */
enum { CATGA_ROLE_VOTER = 0, CATGA_ROLE_STANDBY = 1, CATGA_ROLE_SPARE = 2 };
/* States. */
enum {
  CATGA_STATE_UNAVAILABLE = 0,
  CATGA_STATE_FOLLOWER = 1,
  CATGA_STATE_CANDIDATE = 2,
  CATGA_STATE_LEADER = 3,
};

struct catga_auth_secret; /* raft_auth.h */

struct catga_raft_callbacks {
  void *ctx; /* passed back to every callback */

  /* FSM: a committed RAFT_COMMAND entry at `index`. Return 0. Non-zero stalls
   * the node on purpose (libraft retries the same entry and applies nothing
   * after it). */
  int (*apply)(void *ctx, uint64_t index, const void *data, size_t len);
  /* FSM: the whole state; *data must come from catga_raft_malloc (libraft
   * frees it). Return 0 or a CATGA_RAFT_* error — or, in node mode,
   * CATGA_SNAPSHOT_DEFERRED after catga_raft_snapshot_watch(): the bytes come
   * later, through catga_raft_snapshot_written(). */
  int (*snapshot)(void *ctx, void **data, size_t *len);
  /* Node mode: the descriptor given to catga_raft_snapshot_watch() is
   * readable (again on every loop iteration while it stays readable, until
   * catga_raft_snapshot_unwatch()). */
  void (*snapshot_ready)(void *ctx);
  /* Node mode: raft is closing while a deferred snapshot is not written:
   * stop producing it (its write completes as canceled). */
  void (*snapshot_cancel)(void *ctx);
  /* FSM: replace the whole state. Return 0 or non-zero on failure. */
  int (*restore)(void *ctx, const void *data, size_t len);
  /* Node mode, optional: a snapshot installed from the leader is being
   * written; decode it beside the live state. Runs in libuv's thread pool
   * while the loop thread goes on; `data` stays valid until it returns, and
   * the `restore` of these same bytes follows (after the write) unless raft
   * closes first. */
  void (*restore_prepare)(void *ctx, const void *data, size_t len);

  /* Request completions (see catga_raft_apply & co). */
  void (*apply_done)(void *ctx, void *req_ctx, uint64_t index, int status);
  void (*barrier_done)(void *ctx, void *req_ctx, uint64_t index, int status);
  void (*change_done)(void *ctx, void *req_ctx, int status);
  void (*transfer_done)(void *ctx, void *req_ctx);

  /* Node mode only. */
  void (*wake)(void *ctx);   /* catga_raft_wake() was called (coalesced) */
  void (*after_io)(void *ctx); /* after each loop iteration that did I/O */
  /* A write to a log segment failed (`message` is libraft's, e.g. "write
   * failed: -5"). Called once, from the loop, right after the failed write.
   * libraft 0.22.1 retries such a write from a timer that crashes the process
   * (disk_retry = 5 s later, see raft_c.c): call catga_raft_close() here. */
  void (*disk_failed)(void *ctx, const char *message);
  /* Node mode: a connection to or from the Raft port was refused or failed
   * authentication (one line, rate-limited by the transport). */
  void (*transport_refused)(void *ctx, const char *line);
  /* Node mode, leader: member `id` asked for votes although this node leads
   * `term` and sends it heartbeats, so nothing sent to it arrives. `closed`:
   * its connection, which reported no error, was shut down for libraft to
   * dial again; 0: none was open (raft_peer_link.h). At most once per 100
   * election timeouts per member. */
  void (*peer_link_reset)(void *ctx, uint64_t id, uint64_t term, int closed);
};

struct catga_raft_member {
  uint64_t id;
  const char *address;
  int role; /* CATGA_ROLE_* */
};

struct catga_raft_config {
  uint64_t id;
  const char *address;
  const char *dir;
  unsigned election_timeout_ms;
  unsigned heartbeat_ms;
  unsigned snapshot_threshold;
  unsigned snapshot_trailing;
  int bootstrap; /* non-zero: bootstrap `members` (fresh data directory) */
  const struct catga_raft_member *members;
  unsigned n_members;
  /* How this node reaches its peers: local knowledge, not replicated state.
   * A message to a member listed here goes to this address, whatever the
   * Raft configuration (or the handshake of the member's connection) says;
   * members not listed (added at runtime) are reached at the configuration's
   * address. Copied by catga_raft_open; may be empty. */
  const struct catga_raft_member *address_book;
  unsigned n_address_book;
  /* Authentication (src/cluster/raft_auth.h). secret_len > 0: every Raft
   * connection proves the secret before libraft reads it, and a handshake
   * must finish within handshake_timeout_ms. secret_len == 0: libraft's stock
   * TCP transport, open to anyone (insecure mode). */
  const void *secret;
  size_t secret_len;
  /* Further secrets accepted from peers (a rotation; raft_auth.h). */
  const struct catga_auth_secret *accepted_secrets;
  unsigned n_accepted_secrets;
  /* Instead of the secrets above: their file, reloaded on SIGHUP
   * (peer_secrets.h); non-empty counts as a secret. */
  const char *secret_file;
  const char *cluster_id;
  unsigned handshake_timeout_ms;
  /* Mutual TLS 1.3 on the Raft port when all three are non-empty (PEM
   * files; raft_auth.h): the transport is then the authenticated one even
   * without a secret. */
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
  const char *tls_crl_file; /* optional revocation lists */
  const char *tls_label;    /* names the credentials in reload reports */
};

/* Node mode. On failure returns a CATGA_RAFT_* code (or -1 for a libuv
 * error), fills errmsg and leaves *out NULL (everything already released). */
int catga_raft_open(const struct catga_raft_config *config,
                    const struct catga_raft_callbacks *callbacks,
                    catga_raft **out, char *errmsg, size_t errmsg_len);
/* Runs the loop until catga_raft_close() has completed. */
void catga_raft_run(catga_raft *h);
/* Any thread. Wakes the loop; the `wake` callback runs there (coalesced).
 * Must not be called once catga_raft_close() was called. */
void catga_raft_wake(catga_raft *h);
/* Loop thread: starts closing raft, I/O, transport and handles. Pending
 * requests complete (LEADERSHIPLOST) synchronously inside this call. */
void catga_raft_close(catga_raft *h);
/* After catga_raft_run returned (or in attached mode): releases memory.
 * Returns the uv_loop_close result (0 = clean) in node mode, 0 otherwise. */
int catga_raft_free(catga_raft *h);

/* Attached mode (tests): glue without a loop. */
catga_raft *catga_raft_glue_new(const struct catga_raft_callbacks *callbacks);
/* The struct raft_fsm * to hand to libraft (e.g. raft_fixture_grow). */
void *catga_raft_glue_fsm(catga_raft *h);
/* The struct raft * created with that fsm. */
void catga_raft_glue_attach(catga_raft *h, void *raft);

/* libraft 0.22.1 guard. An InstallSnapshot that reaches a node while it is
 * writing a snapshot of its own is parked by libraft and resumed when that
 * write completes — through a pointer it has just set to NULL
 * (src/legacy.c, takeSnapshotCb): the node dies on a null dereference
 * (tests/cluster/raft_fixture_test.cc reproduces it). Call this with every
 * received message before libraft sees it: when it returns true the message
 * was such an InstallSnapshot and has been freed — drop it, as a lossy network
 * would; the leader sends the snapshot again. `raft` is a struct raft *,
 * `message` a struct raft_message *. Node mode applies it by itself. */
int catga_raft_drop_unsafe_install(void *raft, void *message);

/* libraft 0.22.1 guard. A follower whose own snapshot is ahead of the
 * leader's, and whose log no longer holds the entry the leader probes with
 * (the follower's answers were lost while it kept applying and compacting),
 * is never caught up: it rejects the probe ("missing previous entry"), the
 * leader walks back below its own log and sends its snapshot, the follower
 * dismisses that ("have more recent snapshot") and echoes the leader's
 * snapshot index as its match, so the leader probes the same entry again —
 * for as long as that leader lasts (simulation seed 171, 5 nodes, turns).
 * Call this with every received message the guard lets through: an
 * InstallSnapshot older than the follower's own snapshot is made to name
 * that snapshot, so the answer reports the follower's real match point
 * (every entry a snapshot covers was committed, so the leader holds the
 * same ones) and the leader goes on from there. Returns whether it rewrote
 * the message. `raft` is a struct raft *, `message` a struct raft_message *.
 * Node mode applies it by itself. */
int catga_raft_answer_stale_install(void *raft, void *message);

/* libraft 0.22.1 guard. A follower whose own snapshot is ahead of what the
 * leader believes it holds rejects the leader's probe while the previous
 * entry is one its snapshot compacted away ("missing previous entry"); the
 * leader walks the probe back one index per round trip, and once it reaches
 * index 0 libraft appends the leader's entries after the follower's last
 * one and reads past the end of the message's entry array (a crash or a
 * corrupted log; simulation seeds 337, 647 and 928, 5 nodes, turns). Reached
 * when the follower's answers were lost while it kept applying and
 * compacting and the leader's log still reaches back to the probe. Call this
 * with every received message the guard lets through: an AppendEntries
 * whose previous entry the follower's snapshot covers is made to start after
 * that snapshot (its entries up to there dropped — committed, so identical
 * to the follower's), so the follower answers its real match point. Returns
 * whether it rewrote the message (raft_append_guard.c). `raft` is a struct
 * raft *, `message` a struct raft_message *. Node mode applies it by
 * itself. */
int catga_raft_skip_snapshotted_entries(void *raft, void *message);

/* Deferred snapshots (node mode). libraft 0.22.1 asks the FSM for a snapshot
 * on the loop thread and then writes it (raft_io snapshot_put, in libuv's
 * thread pool); it starts no other snapshot until that write completes, and a
 * write it started can only fail while raft closes. When the snapshot
 * callback answers CATGA_SNAPSHOT_DEFERRED, libraft gets a placeholder and its
 * write is held back until the bytes exist:
 *   - catga_raft_snapshot_watch(h, fd): inside the snapshot callback, watch
 *     `fd` (snapshot_ready runs while it is readable);
 *   - catga_raft_snapshot_unwatch(h): stop watching;
 *   - catga_raft_snapshot_written(h, memfd, len): the snapshot is the first
 *     `len` bytes of `memfd` (ownership passes: mapped read-only, unmapped and
 *     closed once libraft wrote it); libraft's write starts now. Non-zero: it
 *     could not start — the node must close (raft cannot be told the snapshot
 *     failed; closing completes it as canceled).
 * Raft closing with the write still held back calls snapshot_cancel. */
int catga_raft_snapshot_watch(catga_raft *h, int fd);
void catga_raft_snapshot_unwatch(catga_raft *h);
int catga_raft_snapshot_written(catga_raft *h, int memfd, size_t len);

/* Offline (no loop, no node): called before a node starts in `dir`. */

typedef void (*catga_raft_member_cb)(void *ctx, uint64_t id,
                                     const char *address, int role);
/* Decodes the bytes of a libraft snapshot metadata file
 * ("snapshot-TERM-INDEX-TS.meta"): the configuration index and, through
 * `each`, every member. Returns 0 or a CATGA_RAFT_* code (errmsg filled). */
int catga_raft_decode_snapshot_meta(const void *meta, size_t len,
                                    uint64_t *configuration_index,
                                    catga_raft_member_cb each, void *ctx,
                                    char *errmsg, size_t errmsg_len);
/* libraft's raft_recover on the data directory `dir` (which must hold a
 * snapshot or log entries): appends one configuration entry, `members`, after
 * the last entry, so the node starts with that configuration. With term > 0
 * the stored term is first set to `term` (a directory that holds a snapshot
 * and nothing else). Synchronous; returns 0 or a CATGA_RAFT_* code (-1 for a
 * libuv error), errmsg filled. */
int catga_raft_force_configuration(const char *dir, uint64_t id,
                                   const char *address,
                                   const struct catga_raft_member *members,
                                   unsigned n_members, uint64_t term,
                                   char *errmsg, size_t errmsg_len);

/* Memory for libraft buffers (libraft frees them). */
void *catga_raft_malloc(size_t size);

/* Requests. Each returns 0 (the matching *_done callback fires exactly once,
 * possibly synchronously during a later call) or an error code (no callback).
 * `data` (raft_malloc'd, length a multiple of 8) is owned by libraft after a
 * successful call and freed by us on failure. `*index` receives the entry
 * index. */
int catga_raft_apply(catga_raft *h, void *data, size_t len, void *req_ctx,
                     uint64_t *index);
int catga_raft_barrier(catga_raft *h, void *req_ctx);
/* Entries applied between snapshots. libraft compares it with
 * commit_index - last snapshot index when it handles its next event after an
 * apply pass (1: snapshot then). May be called from the FSM callbacks. */
void catga_raft_set_snapshot_threshold(catga_raft *h, unsigned n);
/* Entries a snapshot keeps behind it (n >= 1: libraft 0.22.1's disk layer
 * takes 0 for an installed snapshot). libraft reads it right after the FSM
 * snapshot callback returns (the segments to delete) and again once the
 * snapshot is written (the entries to drop from memory): set it inside that
 * callback and leave it until the next one. */
void catga_raft_set_snapshot_trailing(catga_raft *h, unsigned n);
/* While set, RequestVote messages (pre-votes included) are dropped before
 * libraft sees them: a member with an empty log that has not been added yet
 * (docs/operations.md, "Data directory rules") grants no vote. */
void catga_raft_set_refuse_votes(catga_raft *h, int refuse);
int catga_raft_add(catga_raft *h, uint64_t id, const char *address,
                   void *req_ctx);
int catga_raft_assign(catga_raft *h, uint64_t id, int role, void *req_ctx);
int catga_raft_remove(catga_raft *h, uint64_t id, void *req_ctx);
int catga_raft_transfer(catga_raft *h, uint64_t id, void *req_ctx);

/* Observation. */
struct catga_raft_info {
  int state; /* CATGA_STATE_* */
  uint64_t term;
  uint64_t leader_id;
  const char *leader_address; /* valid until the next loop step; "" if none */
  uint64_t commit_index;
  uint64_t applied_index;
  uint64_t last_index;
  uint64_t snapshot_index;
  uint64_t leader_contact_ms; /* follower: ms since the leader was last heard; UINT64_MAX otherwise */
  uint64_t snapshots_sent;         /* InstallSnapshot messages sent (node mode) */
  uint64_t snapshot_sends_skipped; /* refused: one to that member still queued */
  uint64_t snapshot_terms_corrected; /* InstallSnapshots sent with libraft's wrong term corrected */
  uint64_t config_committed_index;   /* with the next: changes whenever */
  uint64_t config_uncommitted_index; /* the configuration changes */
};
void catga_raft_get_info(catga_raft *h, struct catga_raft_info *info);
/* Members of the current configuration (committed or not). */
unsigned catga_raft_n_members(catga_raft *h);
void catga_raft_get_member(catga_raft *h, unsigned i, struct catga_raft_member *m);
/* Current term (0 before start). */
uint64_t catga_raft_term(catga_raft *h);
/* Last libraft error message of this instance. */
const char *catga_raft_errmsg(catga_raft *h);
const char *catga_raft_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* CATGA_SRC_CLUSTER_RAFT_C_H */
