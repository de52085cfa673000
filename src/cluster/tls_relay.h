/* src/cluster/tls_relay.h — one TLS 1.3 connection relayed to a socketpair,
 * for code that only speaks plain libuv streams (libraft).
 *
 * libraft reads and writes the stream it is handed with uv_read_start and
 * uv_write and closes and frees it itself, so TLS cannot sit inside that
 * stream. The relay owns the TCP connection and the TLS session (OpenSSL
 * with memory BIOs, driven from libuv) and one end of a socketpair; the
 * other end, `inner`, is what the caller gets once the handshake succeeded
 * and the peer certificate named the expected node. Bytes are pumped on the
 * loop thread: ciphertext from TCP is decrypted into the socketpair, bytes
 * from the socketpair are encrypted onto TCP. Each direction stops reading
 * while more than CATGA_TLS_RELAY_QUEUE bytes wait to be written on the
 * other side (back-pressure). Either side closing closes the other: the
 * peer's close_notify, EOF or an error ends `inner` with EOF; the caller
 * closing `inner` sends close_notify and closes TCP.
 *
 * Threading: the loop thread of `loop` only. */
#ifndef CATGA_SRC_CLUSTER_TLS_RELAY_H
#define CATGA_SRC_CLUSTER_TLS_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { CATGA_TLS_RELAY_QUEUE = 1 << 20 };

struct catga_tls_relay;
struct ssl_ctx_st;

struct catga_tls_relay_options {
  int server;          /* non-zero: accept (TLS server), else dial */
  uint64_t expect_id;  /* client: the node id the server must prove; 0: any */
  unsigned timeout_ms; /* the handshake's bound, > 0 */
  /* Storage for `inner`, owned by the callee once handed over (libraft
   * frees its streams with raft_free: pass raft_malloc/raft_free). */
  void *(*alloc)(size_t size);
  void (*release)(void *ptr);
  /* The handshake ended. status 0: `inner` is a connected uv_pipe_t now
   * owned by the callee and `peer_id` the node the peer's certificate
   * names. Otherwise `inner` is NULL and `why` one phrase for the log; the
   * relay closes itself. Called once, unless catga_tls_relay_close came
   * first. */
  void (*handshake_done)(void *data, int status, const char *why,
                         uint64_t peer_id, uv_stream_t *inner);
  void *data;
  /* Every handle of the relay is closed and its memory released (the relay
   * may outlive the handshake: hence its own context). */
  void (*closed)(void *closed_data);
  void *closed_data;
};

/* Creates a relay whose TCP handle is initialised on `loop`: accept or
 * connect into catga_tls_relay_tcp(), then call catga_tls_relay_start.
 * `ctx` is referenced, not taken. NULL when out of memory. */
struct catga_tls_relay *catga_tls_relay_new(uv_loop_t *loop,
                                            struct ssl_ctx_st *ctx,
                                            const struct catga_tls_relay_options *o);
uv_tcp_t *catga_tls_relay_tcp(struct catga_tls_relay *r);
/* Starts the handshake on the connected TCP handle (bounded by
 * timeout_ms). Failures are reported through handshake_done. */
void catga_tls_relay_start(struct catga_tls_relay *r);
/* Tears the relay down at once (idempotent); `closed` follows. A pending
 * handshake_done is not called. */
void catga_tls_relay_close(struct catga_tls_relay *r);

#ifdef __cplusplus
}
#endif

#endif /* CATGA_SRC_CLUSTER_TLS_RELAY_H */
