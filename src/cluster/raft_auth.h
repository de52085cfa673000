/* src/cluster/raft_auth.h — the authenticated Raft transport and its
 * handshake codec (C; raft_auth.c is raft_c.c's one sibling that includes
 * raft.h).
 *
 * A connection to the Raft port is handed to libraft only after both ends
 * proved they hold the cluster secret. The dialling side is libraft's stock
 * TCP transport (it writes libraft's own handshake: protocol 1, its id, its
 * address), followed by this exchange; the listening side is ours and parses
 * every byte itself, bounded in size and time, before libraft sees the stream.
 *
 *   dialler -> listener  libraft handshake: u64 protocol (1), u64 id,
 *                        u64 n (address bytes, padded to 8), address + NULs
 *   dialler -> listener  HELLO   "CATGAHI1" + 32-byte nonce_d
 *   listener -> dialler  CHALLENGE "CATGACH1" + 32-byte nonce_l + 32-byte mac_l
 *   dialler -> listener  PROOF   32-byte mac_d
 *   listener -> dialler  WELCOME "CATGAOK1"
 *
 * mac_x = HMAC-SHA256(secret, "catga-auth-v1" | channel | direction |
 *         u64 len(cluster_id) | cluster_id | nonce_d | nonce_l | u64 dialler id |
 *         u64 listener id), direction 'D' for the dialler's, 'L' for the
 * listener's (a MAC is never valid in the other direction), integers little
 * endian. The listener proves first; the dialler checks the listener is the
 * member it meant to reach. Nothing follows WELCOME on the listener's side
 * and nothing follows PROOF on the dialler's until WELCOME: no byte of either
 * side's Raft traffic is ever read by the handshake.
 *
 * With TLS (catga_auth_options' three files), every connection is first a
 * mutual TLS 1.3 session (tls_relay.h): the dialler connects itself and
 * writes libraft's handshake inside TLS; the listener reads it there and
 * requires the id it claims to be the one the peer certificate names
 * (tls_context.h); the dialler requires the certificate of the member it
 * reached to name that member. The exchange above then follows inside TLS
 * when a secret is set too; without one, the hand-over follows libraft's
 * handshake directly. libraft gets the socketpair end of the relay.
 *
 * Threading: everything runs on the loop thread of the transport. */
#ifndef CATGA_SRC_CLUSTER_RAFT_AUTH_H
#define CATGA_SRC_CLUSTER_RAFT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  CATGA_AUTH_NONCE = 32,
  CATGA_AUTH_MAC = 32,
  CATGA_AUTH_MAGIC = 8,
  CATGA_AUTH_MAX_ADDRESS = 256, /* padded address bytes accepted */
  CATGA_AUTH_PREAMBLE = 24,
  CATGA_AUTH_HELLO = CATGA_AUTH_MAGIC + CATGA_AUTH_NONCE,
  CATGA_AUTH_CHALLENGE = CATGA_AUTH_MAGIC + CATGA_AUTH_NONCE + CATGA_AUTH_MAC,
  CATGA_AUTH_PROOF = CATGA_AUTH_MAC,
  CATGA_AUTH_WELCOME = CATGA_AUTH_MAGIC,
};

/* The MAC described above. `channel` names the port ("raft", "peer").
 * Returns 0, or -1 when OpenSSL could not compute it (`out` is then unusable:
 * refuse the connection). */
int catga_auth_mac(const void *secret, size_t secret_len, const char *channel,
                    char direction, const char *cluster_id,
                    const uint8_t nonce_dialler[CATGA_AUTH_NONCE],
                    const uint8_t nonce_listener[CATGA_AUTH_NONCE],
                    uint64_t dialler_id, uint64_t listener_id,
                    uint8_t out[CATGA_AUTH_MAC]);
/* Constant-time comparison of two MACs: 1 when equal. */
int catga_auth_mac_equal(const uint8_t a[CATGA_AUTH_MAC],
                         const uint8_t b[CATGA_AUTH_MAC]);
/* Fresh random bytes (OpenSSL's CSPRNG): 0, or -1 when it failed. */
int catga_auth_random(uint8_t *out, size_t n);

/* Handshake decoder, one per connection and side. Feed it bytes as they
 * arrive; it never consumes more than the frame it is waiting for (ask
 * catga_auth_reader_want() how many bytes to read at most), and reports each
 * completed frame. Pure: no I/O, no allocation (fuzzed in
 * tests/fuzz/fuzz_raft_handshake.cc). */
enum catga_auth_side { CATGA_AUTH_LISTENER = 0, CATGA_AUTH_DIALLER = 1 };
enum catga_auth_frame {
  CATGA_AUTH_NONE = 0,
  CATGA_AUTH_GOT_IDENTITY, /* listener: libraft handshake (peer_id, peer_address) */
  CATGA_AUTH_GOT_HELLO,    /* listener: peer_nonce */
  CATGA_AUTH_GOT_PROOF,    /* listener: peer_mac */
  CATGA_AUTH_GOT_CHALLENGE, /* dialler: peer_nonce, peer_mac */
  CATGA_AUTH_GOT_WELCOME,  /* dialler: done */
  CATGA_AUTH_BAD,          /* malformed: `error` says why; feed no more */
};
struct catga_auth_reader {
  int side;
  int next;   /* the frame being read (a catga_auth_frame) */
  size_t want; /* its size */
  size_t have;
  uint8_t buf[CATGA_AUTH_PREAMBLE + CATGA_AUTH_MAX_ADDRESS];
  uint64_t peer_id;
  char peer_address[CATGA_AUTH_MAX_ADDRESS];
  uint8_t peer_nonce[CATGA_AUTH_NONCE];
  uint8_t peer_mac[CATGA_AUTH_MAC];
  const char *error;
};
void catga_auth_reader_init(struct catga_auth_reader *r, int side);
/* Bytes the current frame still needs (0 once done or bad). */
size_t catga_auth_reader_want(const struct catga_auth_reader *r);
/* Consumes at most catga_auth_reader_want() bytes of `data` (*used says how
 * many) and returns the frame completed by them, CATGA_AUTH_NONE if it is not
 * complete yet, or CATGA_AUTH_BAD. */
int catga_auth_reader_feed(struct catga_auth_reader *r, const uint8_t *data,
                           size_t len, size_t *used);

/* The authenticated transport (opaque to the C++ side: raft_c.c creates it).
 * `log` gets one line per refused or failed connection, rate-limited to one
 * line per second (the next line counts the ones left out). */
/* A secret accepted from peers besides the one a node proves itself with
 * (a rotation: docs/security.md). */
struct catga_auth_secret {
  const void *data;
  size_t len;
};
enum { CATGA_AUTH_MAX_ACCEPTED = 8 };

struct catga_auth_options {
  const void *secret; /* this node proves it; accepted from peers too */
  size_t secret_len; /* > 0, a secret_file, or TLS files given */
  /* Also accepted from peers (never sent): at most CATGA_AUTH_MAX_ACCEPTED,
   * each non-empty; needs a secret. A listener proves `secret`; a dialler
   * answers with whichever of its secrets the listener proved. */
  const struct catga_auth_secret *accepted;
  unsigned n_accepted;
  /* Instead of the three above: a file of secrets (peer_secrets.h), read
   * again for new connections by catga_peer_secrets_reload_all (SIGHUP). */
  const char *secret_file;
  const char *cluster_id;
  unsigned handshake_timeout_ms; /* > 0 */
  unsigned max_pending;          /* unauthenticated connections at once */
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
  /* Mutual TLS 1.3 (tls_context.h, tls_relay.h), on when all three are
   * non-empty: every connection, dialled or accepted, is a TLS session whose
   * peer certificate must name the node id (the dialled member's, or the one
   * libraft's handshake claims); libraft's handshake and the exchange above
   * (when a secret is set too) then run inside it. */
  const char *tls_ca_file;
  const char *tls_cert_file;
  const char *tls_key_file;
  const char *tls_crl_file; /* optional revocation lists (tls_context.h) */
  const char *tls_label;    /* names the credentials in reload reports */
};

struct raft_uv_transport;
struct uv_loop_s;
/* Fills `t` (whose `version` is 1) with the authenticated transport; hand it
 * to raft_uv_init. Returns 0 or a CATGA_RAFT_* code (t->errmsg filled). */
int catga_auth_transport_init(struct raft_uv_transport *t, struct uv_loop_s *loop,
                              const struct catga_auth_options *options);
/* Releases its memory: after its close callback fired, or if it was never
 * started (the counterpart of raft_uv_tcp_close). */
void catga_auth_transport_close(struct raft_uv_transport *t);

#ifdef __cplusplus
}
#endif

#endif /* CATGA_SRC_CLUSTER_RAFT_AUTH_H */
