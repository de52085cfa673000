/* src/cluster/raft_auth.c — the authenticated Raft transport (see
 * raft_auth.h for the wire format). raft_c.c's one sibling that includes
 * raft.h: it implements struct raft_uv_transport and is handed to
 * raft_uv_init by raft_c.c. */
#include "cluster/raft_auth.h"

#include "cluster/peer_secrets.h"
#include "cluster/tls_context.h"
#include "cluster/tls_relay.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAGIC_HELLO "CATGAHI1"
#define MAGIC_CHALLENGE "CATGACH1"
#define MAGIC_WELCOME "CATGAOK1"
#define LIBRAFT_HANDSHAKE_PROTOCOL 1

/* ------------------------------------------------------------------ codec */

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) {
    v = (v << 8) | p[i];
  }
  return v;
}

int catga_auth_mac(const void *secret, size_t secret_len, const char *channel,
                    char direction, const char *cluster_id,
                    const uint8_t nonce_dialler[CATGA_AUTH_NONCE],
                    const uint8_t nonce_listener[CATGA_AUTH_NONCE],
                    uint64_t dialler_id, uint64_t listener_id,
                    uint8_t out[CATGA_AUTH_MAC]) {
  static const char label[] = "catga-auth-v1";
  size_t channel_len = strlen(channel);
  size_t cluster_len = strlen(cluster_id);
  uint8_t n[8];
  size_t out_len = 0;
  char digest[] = "SHA256";
  OSSL_PARAM params[2];
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
  params[0] = OSSL_PARAM_construct_utf8_string("digest", digest, 0);
  params[1] = OSSL_PARAM_construct_end();
  int rv = -1;
  if (ctx != NULL && EVP_MAC_init(ctx, secret, secret_len, params) == 1) {
    EVP_MAC_update(ctx, (const uint8_t *)label, sizeof label - 1);
    put64(n, channel_len);
    EVP_MAC_update(ctx, n, 8);
    EVP_MAC_update(ctx, (const uint8_t *)channel, channel_len);
    EVP_MAC_update(ctx, (const uint8_t *)&direction, 1);
    put64(n, cluster_len);
    EVP_MAC_update(ctx, n, 8);
    EVP_MAC_update(ctx, (const uint8_t *)cluster_id, cluster_len);
    EVP_MAC_update(ctx, nonce_dialler, CATGA_AUTH_NONCE);
    EVP_MAC_update(ctx, nonce_listener, CATGA_AUTH_NONCE);
    put64(n, dialler_id);
    EVP_MAC_update(ctx, n, 8);
    put64(n, listener_id);
    EVP_MAC_update(ctx, n, 8);
    if (EVP_MAC_final(ctx, out, &out_len, CATGA_AUTH_MAC) == 1 &&
        out_len == CATGA_AUTH_MAC) {
      rv = 0;
    }
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return rv;
}

int catga_auth_mac_equal(const uint8_t a[CATGA_AUTH_MAC],
                         const uint8_t b[CATGA_AUTH_MAC]) {
  return CRYPTO_memcmp(a, b, CATGA_AUTH_MAC) == 0;
}

int catga_auth_random(uint8_t *out, size_t n) {
  return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}

static void readerExpect(struct catga_auth_reader *r, int frame, size_t size) {
  r->next = frame;
  r->want = size;
  r->have = 0;
}

void catga_auth_reader_init(struct catga_auth_reader *r, int side) {
  memset(r, 0, sizeof *r);
  r->side = side;
  if (side == CATGA_AUTH_LISTENER) {
    readerExpect(r, CATGA_AUTH_GOT_IDENTITY, CATGA_AUTH_PREAMBLE);
  } else {
    readerExpect(r, CATGA_AUTH_GOT_CHALLENGE, CATGA_AUTH_CHALLENGE);
  }
}

size_t catga_auth_reader_want(const struct catga_auth_reader *r) {
  if (r->next == CATGA_AUTH_NONE || r->next == CATGA_AUTH_BAD) {
    return 0;
  }
  return r->want - r->have;
}

static int readerBad(struct catga_auth_reader *r, const char *why) {
  r->next = CATGA_AUTH_BAD;
  r->error = why;
  return CATGA_AUTH_BAD;
}

/* libraft's handshake: the 24-byte preamble, then the padded address. */
static int readerIdentity(struct catga_auth_reader *r) {
  if (r->want == CATGA_AUTH_PREAMBLE) {
    uint64_t protocol = get64(r->buf);
    uint64_t id = get64(r->buf + 8);
    uint64_t n = get64(r->buf + 16);
    if (protocol != LIBRAFT_HANDSHAKE_PROTOCOL) {
      return readerBad(r, "not a Raft handshake (unknown protocol)");
    }
    if (id == 0) {
      return readerBad(r, "Raft handshake claims node id 0");
    }
    if (n == 0 || n % 8 != 0 || n > CATGA_AUTH_MAX_ADDRESS) {
      return readerBad(r, "Raft handshake address length out of bounds");
    }
    r->peer_id = id; /* the claim, unproven until the MAC checks */
    r->want = CATGA_AUTH_PREAMBLE + (size_t)n;
    return CATGA_AUTH_NONE;
  }
  {
    const uint8_t *a = r->buf + CATGA_AUTH_PREAMBLE;
    size_t n = r->want - CATGA_AUTH_PREAMBLE;
    size_t len = 0;
    while (len < n && a[len] != 0) {
      if (a[len] < 0x21 || a[len] > 0x7e) {
        return readerBad(r, "Raft handshake address is not printable");
      }
      len++;
    }
    if (len == 0 || len == n) {
      return readerBad(r, "Raft handshake address is empty or unterminated");
    }
    for (size_t i = len; i < n; i++) {
      if (a[i] != 0) {
        return readerBad(r, "Raft handshake address padding is not zero");
      }
    }
    memcpy(r->peer_address, a, len + 1);
  }
  readerExpect(r, CATGA_AUTH_GOT_HELLO, CATGA_AUTH_HELLO);
  return CATGA_AUTH_GOT_IDENTITY;
}

static int readerComplete(struct catga_auth_reader *r) {
  switch (r->next) {
    case CATGA_AUTH_GOT_IDENTITY:
      return readerIdentity(r);
    case CATGA_AUTH_GOT_HELLO:
      if (memcmp(r->buf, MAGIC_HELLO, CATGA_AUTH_MAGIC) != 0) {
        return readerBad(r, "no authentication hello after the Raft handshake "
                            "(the peer runs without the cluster secret?)");
      }
      memcpy(r->peer_nonce, r->buf + CATGA_AUTH_MAGIC, CATGA_AUTH_NONCE);
      readerExpect(r, CATGA_AUTH_GOT_PROOF, CATGA_AUTH_PROOF);
      return CATGA_AUTH_GOT_HELLO;
    case CATGA_AUTH_GOT_PROOF:
      memcpy(r->peer_mac, r->buf, CATGA_AUTH_MAC);
      readerExpect(r, CATGA_AUTH_NONE, 0);
      return CATGA_AUTH_GOT_PROOF;
    case CATGA_AUTH_GOT_CHALLENGE:
      if (memcmp(r->buf, MAGIC_CHALLENGE, CATGA_AUTH_MAGIC) != 0) {
        return readerBad(r, "no authentication challenge (the peer runs "
                            "without the cluster secret?)");
      }
      memcpy(r->peer_nonce, r->buf + CATGA_AUTH_MAGIC, CATGA_AUTH_NONCE);
      memcpy(r->peer_mac, r->buf + CATGA_AUTH_MAGIC + CATGA_AUTH_NONCE,
             CATGA_AUTH_MAC);
      readerExpect(r, CATGA_AUTH_GOT_WELCOME, CATGA_AUTH_WELCOME);
      return CATGA_AUTH_GOT_CHALLENGE;
    case CATGA_AUTH_GOT_WELCOME:
      if (memcmp(r->buf, MAGIC_WELCOME, CATGA_AUTH_MAGIC) != 0) {
        return readerBad(r, "malformed authentication welcome");
      }
      readerExpect(r, CATGA_AUTH_NONE, 0);
      return CATGA_AUTH_GOT_WELCOME;
    default:
      return readerBad(r, "unexpected handshake state");
  }
}

int catga_auth_reader_feed(struct catga_auth_reader *r, const uint8_t *data,
                           size_t len, size_t *used) {
  size_t want = catga_auth_reader_want(r);
  size_t n = len < want ? len : want;
  *used = 0;
  if (r->next == CATGA_AUTH_BAD) {
    return CATGA_AUTH_BAD;
  }
  if (n == 0) {
    return CATGA_AUTH_NONE;
  }
  memcpy(r->buf + r->have, data, n);
  r->have += n;
  *used = n;
  if (r->have < r->want) {
    return CATGA_AUTH_NONE;
  }
  return readerComplete(r);
}

/* -------------------------------------------------------------- transport */

struct handshake;
struct relayRef;

struct catgaAuth {
  struct raft_uv_transport *iface;
  struct raft_uv_transport tcp; /* libraft's stock transport: dials */
  uv_loop_t *loop;
  raft_id id;
  char *address;
  /* the first proves this node; every one is accepted from peers; none:
   * TLS alone. Each handshake takes the current set (a reload). */
  struct catga_peer_secrets *secrets;
  char *cluster_id;
  unsigned timeout_ms;
  unsigned max_pending;
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
  /* Log lines are limited to one a second per direction ([0] connections
   * from peers and the rest, [1] connections to peers), so the refusals of
   * one direction never hide the other's. */
  uint64_t last_log_ms[2];
  bool logged[2];
  unsigned left_out[2];
  uv_tcp_t *listener;
  raft_uv_accept_cb accept_cb;
  struct handshake *handshakes; /* until fully released */
  struct catga_tls_context *tls; /* NULL: no TLS */
  struct relayRef *relays;       /* TLS connections, until closed */
  unsigned n_incoming;          /* listener-side ones among them */
  bool closing;
  bool tcp_closed;
  raft_uv_transport_close_cb close_cb;
};

struct handshake {
  struct catgaAuth *a;
  struct handshake *prev, *next;
  bool dialler;
  bool done;    /* handed over or failed */
  unsigned writing; /* writes in flight */
  unsigned writes;  /* writes issued (each side issues two) */
  bool welcomed; /* the exchange succeeded (hand over once not writing) */
  unsigned open_handles;
  uv_stream_t *stream; /* the connection while we own it (TCP, or the
                         * socketpair end of a TLS relay) */
  struct catga_tls_relay *relay; /* until its TLS handshake ended */
  uint64_t tls_peer_id;          /* the node the peer certificate names */
  unsigned pending;              /* resolve/connect requests in flight */
  bool resolving;
  uv_getaddrinfo_t resolve;      /* TLS dialler */
  uv_connect_t tcp_connect;      /* TLS dialler */
  uv_timer_t timer;
  /* One request and buffer per write: the second may be issued before the
   * first one's callback ran (the peer answered within the same loop
   * iteration). */
  uv_write_t write[2];
  uint8_t out[2][CATGA_AUTH_PREAMBLE + CATGA_AUTH_MAX_ADDRESS + CATGA_AUTH_HELLO];
  uint8_t in[CATGA_AUTH_PREAMBLE + CATGA_AUTH_MAX_ADDRESS];
  struct catga_auth_reader reader;
  const struct catga_secret_set *set; /* the secrets it runs with */
  uint8_t nonce[CATGA_AUTH_NONCE];
  char peer[96]; /* for log lines */
  /* dialler */
  raft_id peer_id;
  struct raft_uv_connect connect; /* handed to the stock transport */
  struct raft_uv_connect *outer;
  raft_uv_connect_cb outer_cb;
};

static void authLog(struct catgaAuth *a, bool dialling, const char *fmt, ...) {
  char line[512];
  size_t n;
  va_list ap;
  uint64_t now = uv_now(a->loop);
  const int d = dialling ? 1 : 0;
  if (a->log == NULL) {
    return;
  }
  if (a->logged[d] && now - a->last_log_ms[d] < 1000) {
    a->left_out[d]++;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  n = strlen(line);
  if (a->left_out[d] > 0 && n < sizeof line) {
    snprintf(line + n, sizeof line - n,
             " (%u more such lines left out in the last second)", a->left_out[d]);
  }
  a->log(a->log_ctx, line);
  a->logged[d] = true;
  a->last_log_ms[d] = now;
  a->left_out[d] = 0;
}

static void maybeClosed(struct catgaAuth *a) {
  if (a->closing && a->tcp_closed && a->listener == NULL &&
      a->handshakes == NULL && a->relays == NULL && a->close_cb != NULL) {
    raft_uv_transport_close_cb cb = a->close_cb;
    a->close_cb = NULL;
    cb(a->iface);
  }
}

static void handshakeRelease(struct handshake *h) {
  struct catgaAuth *a = h->a;
  if (h->open_handles > 0 || h->writing || h->pending) {
    return;
  }
  if (h->prev != NULL) {
    h->prev->next = h->next;
  } else {
    a->handshakes = h->next;
  }
  if (h->next != NULL) {
    h->next->prev = h->prev;
  }
  if (!h->dialler) {
    a->n_incoming--;
  }
  catga_secret_set_release(h->set);
  raft_free(h);
  maybeClosed(a);
}

static void handleClosed(uv_handle_t *handle) {
  struct handshake *h = handle->data;
  if (handle != (uv_handle_t *)&h->timer) {
    raft_free(handle);
  }
  h->open_handles--;
  handshakeRelease(h);
}

/* Ends the handshake: status 0 hands the connection to libraft; otherwise
 * the connection is closed (a dialler's request completes with `status`). */
static void handshakeFinish(struct handshake *h, int status) {
  struct catgaAuth *a = h->a;
  uv_stream_t *stream = h->stream;
  if (h->done) {
    return;
  }
  h->done = true;
  if (h->relay != NULL) {
    catga_tls_relay_close(h->relay); /* cancels its connect, if any */
    h->relay = NULL;
  }
  if (h->resolving) {
    uv_cancel((uv_req_t *)&h->resolve); /* fails harmlessly once running */
  }
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, handleClosed);
  if (stream != NULL) {
    uv_read_stop(stream);
  }
  if (status == 0 && !a->closing) {
    h->stream = NULL;
    stream->data = NULL;
    if (h->dialler) {
      h->outer->cb = h->outer_cb;
      h->outer_cb(h->outer, stream, 0);
    } else {
      a->accept_cb(a->iface, h->reader.peer_id, h->reader.peer_address, stream);
    }
    return;
  }
  if (stream != NULL) {
    h->stream = NULL;
    h->open_handles++;
    uv_close((uv_handle_t *)stream, handleClosed);
  }
  if (h->dialler) {
    h->outer->cb = h->outer_cb;
    h->outer_cb(h->outer, NULL, a->closing ? RAFT_CANCELED : status);
  }
}

static void handshakeFail(struct handshake *h, const char *why) {
  if (h->done) {
    return;
  }
  if (h->dialler) {
    authLog(h->a, true, "raft: connection to member %llu at %s refused: %s",
            (unsigned long long)h->peer_id, h->peer, why);
  } else if (h->reader.peer_id != 0) {
    authLog(h->a, false, "raft: connection from %s (claims member %llu) refused: %s",
            h->peer, (unsigned long long)h->reader.peer_id, why);
  } else {
    authLog(h->a, false, "raft: connection from %s refused: %s", h->peer, why);
  }
  handshakeFinish(h, RAFT_NOCONNECTION);
}

static void maybeHandOver(struct handshake *h) {
  if (h->welcomed && !h->writing) {
    handshakeFinish(h, 0);
  }
}

static void writeDone(uv_write_t *req, int status) {
  struct handshake *h = req->data;
  h->writing--;
  if (h->done) {
    handshakeRelease(h);
    return;
  }
  if (status != 0) {
    handshakeFail(h, uv_strerror(status));
    return;
  }
  maybeHandOver(h);
}

/* The buffer of the next write. */
static uint8_t *nextOut(struct handshake *h) { return h->out[h->writes]; }

/* Sends the first `len` bytes of nextOut(). */
static void handshakeWrite(struct handshake *h, size_t len) {
  uv_write_t *req = &h->write[h->writes];
  uv_buf_t buf = uv_buf_init((char *)h->out[h->writes], (unsigned)len);
  int rv;
  req->data = h;
  rv = uv_write(req, h->stream, &buf, 1, writeDone);
  if (rv != 0) {
    handshakeFail(h, uv_strerror(rv));
    return;
  }
  h->writes++;
  h->writing++;
}

/* The MAC for `direction` under secret number `which`. */
static int handshakeMac(const struct handshake *h, unsigned which,
                        char direction, uint8_t out[CATGA_AUTH_MAC]) {
  const struct catgaAuth *a = h->a;
  if (h->dialler) {
    return catga_auth_mac(h->set->data[which], h->set->len[which], "raft",
                          direction, a->cluster_id, h->nonce,
                          h->reader.peer_nonce, a->id, h->peer_id, out);
  }
  return catga_auth_mac(h->set->data[which], h->set->len[which], "raft",
                        direction, a->cluster_id, h->reader.peer_nonce,
                        h->nonce, h->reader.peer_id, a->id, out);
}

/* The number of the secret under which the peer's MAC for `direction` is
 * valid, or -1 when none of this node's secrets makes it. */
static int provenSecret(const struct handshake *h, char direction) {
  uint8_t mac[CATGA_AUTH_MAC];
  int found = -1;
  for (unsigned i = 0; i < h->set->n; i++) {
    if (handshakeMac(h, i, direction, mac) == 0 &&
        catga_auth_mac_equal(mac, h->reader.peer_mac) && found < 0) {
      found = (int)i; /* no early exit: the same work whichever matches */
    }
  }
  return found;
}

/* One completed frame; false when the handshake ended. */
static bool handshakeFrame(struct handshake *h, int frame) {
  int proven;
  switch (frame) {
    case CATGA_AUTH_NONE:
      return true;
    case CATGA_AUTH_GOT_IDENTITY:
      if (h->a->tls != NULL && h->reader.peer_id != h->tls_peer_id) {
        char why[128];
        snprintf(why, sizeof why, "its TLS certificate is for node %llu",
                 (unsigned long long)h->tls_peer_id);
        handshakeFail(h, why);
        return false;
      }
      if (h->set->n == 0) { /* TLS alone: the certificate proved it */
        uv_read_stop(h->stream);
        h->welcomed = true;
        maybeHandOver(h);
        return false;
      }
      return true;
    case CATGA_AUTH_GOT_HELLO: /* listener: prove first */
      memcpy(nextOut(h), MAGIC_CHALLENGE, CATGA_AUTH_MAGIC);
      memcpy(nextOut(h) + CATGA_AUTH_MAGIC, h->nonce, CATGA_AUTH_NONCE);
      if (handshakeMac(h, 0, 'L',
                       nextOut(h) + CATGA_AUTH_MAGIC + CATGA_AUTH_NONCE)) {
        handshakeFail(h, "HMAC-SHA256 unavailable (OpenSSL)");
        return false;
      }
      handshakeWrite(h, CATGA_AUTH_CHALLENGE);
      return !h->done;
    case CATGA_AUTH_GOT_PROOF:
      if (provenSecret(h, 'D') < 0) {
        handshakeFail(h, "wrong cluster secret or cluster id");
        return false;
      }
      uv_read_stop(h->stream);
      memcpy(nextOut(h), MAGIC_WELCOME, CATGA_AUTH_MAGIC);
      h->welcomed = true;
      handshakeWrite(h, CATGA_AUTH_WELCOME);
      return false;
    case CATGA_AUTH_GOT_CHALLENGE:
      proven = provenSecret(h, 'L');
      if (proven < 0) {
        handshakeFail(h, "it does not hold the cluster secret (or has another "
                         "cluster id or node id)");
        return false;
      }
      if (handshakeMac(h, (unsigned)proven, 'D', nextOut(h)) != 0) {
        handshakeFail(h, "HMAC-SHA256 unavailable (OpenSSL)");
        return false;
      }
      handshakeWrite(h, CATGA_AUTH_PROOF);
      return !h->done;
    case CATGA_AUTH_GOT_WELCOME:
      uv_read_stop(h->stream);
      h->welcomed = true;
      maybeHandOver(h);
      return false;
    default:
      handshakeFail(h, h->reader.error);
      return false;
  }
}

static void allocCb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  struct handshake *h = handle->data;
  size_t want = catga_auth_reader_want(&h->reader);
  (void)suggested;
  /* Never more than the frame awaited: Raft traffic stays in the socket. */
  buf->base = (char *)h->in;
  buf->len = want;
}

static void readCb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct handshake *h = stream->data;
  size_t off = 0;
  (void)buf;
  if (nread == 0) {
    return;
  }
  if (nread < 0) {
    /* A listener proves itself with its first write, a dialler with its
     * second: a peer that hangs up right after that most likely refused the
     * proof, and only this side's log can say so (it learnt nothing). */
    const bool proved = h->writes == (h->dialler ? 2u : 1u);
    handshakeFail(h, nread != UV_EOF ? uv_strerror((int)nread)
                     : proved ? "closed by the peer after this node proved "
                                "its secret: the peer probably does not "
                                "accept this node's cluster secret or "
                                "cluster id"
                              : "closed during the authentication handshake");
    return;
  }
  while (off < (size_t)nread) {
    size_t used = 0;
    int frame = catga_auth_reader_feed(&h->reader, h->in + off,
                                       (size_t)nread - off, &used);
    off += used;
    if (!handshakeFrame(h, frame) || (used == 0 && frame == CATGA_AUTH_NONE)) {
      return;
    }
  }
}

static void timerCb(uv_timer_t *timer) {
  struct handshake *h = timer->data;
  char why[96];
  snprintf(why, sizeof why, "%s handshake not completed within %u ms",
           h->relay != NULL ? "TLS" : "authentication", h->a->timeout_ms);
  handshakeFail(h, why);
}

static struct handshake *handshakeNew(struct catgaAuth *a, bool dialler) {
  struct handshake *h = raft_malloc(sizeof *h);
  if (h == NULL) {
    return NULL;
  }
  memset(h, 0, sizeof *h);
  h->a = a;
  h->dialler = dialler;
  catga_auth_reader_init(&h->reader,
                         dialler ? CATGA_AUTH_DIALLER : CATGA_AUTH_LISTENER);
  if (catga_auth_random(h->nonce, sizeof h->nonce) != 0) {
    raft_free(h);
    return NULL;
  }
  h->set = catga_peer_secrets_acquire(a->secrets);
  uv_timer_init(a->loop, &h->timer);
  h->timer.data = h;
  h->open_handles = 1;
  h->next = a->handshakes;
  if (h->next != NULL) {
    h->next->prev = h;
  }
  a->handshakes = h;
  if (!dialler) {
    a->n_incoming++;
  }
  return h;
}

/* The connection is up: start the exchange, bounded in time. */
/* libraft's own handshake (src/uv_tcp_connect.c): written by us when the
 * dialler is a TLS relay, as libraft's stock dialler writes it in clear.
 * Returns its length, 0 when the address is too long. */
static size_t librafHandshake(const struct catgaAuth *a, uint8_t *out) {
  size_t len = strlen(a->address);
  size_t padded = (len + 1 + 7) / 8 * 8;
  if (padded > CATGA_AUTH_MAX_ADDRESS) {
    return 0;
  }
  put64(out, LIBRAFT_HANDSHAKE_PROTOCOL);
  put64(out + 8, a->id);
  put64(out + 16, padded);
  memset(out + CATGA_AUTH_PREAMBLE, 0, padded);
  memcpy(out + CATGA_AUTH_PREAMBLE, a->address, len);
  return CATGA_AUTH_PREAMBLE + padded;
}

/* The connection is up: start the exchange, bounded in time (from the TCP
 * connection on, when TLS came first). */
static void handshakeStart(struct handshake *h, uv_stream_t *stream) {
  int rv;
  size_t n = 0;
  h->stream = stream;
  stream->data = h;
  if (stream->type == UV_TCP) {
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
  }
  if (!uv_is_active((uv_handle_t *)&h->timer)) {
    uv_timer_start(&h->timer, timerCb, h->a->timeout_ms, 0);
  }
  rv = uv_read_start(stream, allocCb, readCb);
  if (rv != 0) {
    handshakeFail(h, uv_strerror(rv));
    return;
  }
  if (!h->dialler) {
    return;
  }
  if (h->a->tls != NULL) {
    n = librafHandshake(h->a, nextOut(h));
    if (n == 0) {
      handshakeFail(h, "own address too long for libraft's handshake");
      return;
    }
  }
  if (h->set->n == 0) { /* TLS alone: hand over once it is written */
    uv_read_stop(stream);
    h->welcomed = true;
    handshakeWrite(h, n);
    return;
  }
  memcpy(nextOut(h) + n, MAGIC_HELLO, CATGA_AUTH_MAGIC);
  memcpy(nextOut(h) + n + CATGA_AUTH_MAGIC, h->nonce, CATGA_AUTH_NONCE);
  handshakeWrite(h, n + CATGA_AUTH_HELLO);
}

/* ------------------------------------------------------------ TLS relays */

/* A TLS relay's membership in the transport: the transport's close waits
 * for every relay, including those whose socketpair end libraft holds. */
struct relayRef {
  struct catgaAuth *a;
  struct catga_tls_relay *relay;
  struct relayRef *prev, *next;
};

static void relayClosed(void *data) {
  struct relayRef *ref = data;
  struct catgaAuth *a = ref->a;
  if (ref->prev != NULL) {
    ref->prev->next = ref->next;
  } else {
    a->relays = ref->next;
  }
  if (ref->next != NULL) {
    ref->next->prev = ref->prev;
  }
  raft_free(ref);
  maybeClosed(a);
}

static void relayHandshakeDone(void *data, int status, const char *why,
                               uint64_t peer_id, uv_stream_t *inner) {
  struct handshake *h = data;
  h->relay = NULL; /* it lives on by itself (or is closing) */
  if (status != 0) {
    handshakeFail(h, why);
    return;
  }
  h->tls_peer_id = peer_id;
  handshakeStart(h, inner);
}

/* Creates h->relay with the current credentials; false when impossible. */
static bool relayFor(struct handshake *h) {
  struct catgaAuth *a = h->a;
  char err[320];
  struct ssl_ctx_st *ctx = catga_tls_context_get(a->tls, err, sizeof err);
  struct relayRef *ref = raft_malloc(sizeof *ref);
  struct catga_tls_relay_options o;
  if (err[0] != '\0') {
    authLog(a, false, "raft: TLS credentials not reloaded: %s", err);
  }
  if (ref == NULL) {
    SSL_CTX_free(ctx);
    return false;
  }
  memset(&o, 0, sizeof o);
  o.server = !h->dialler;
  o.expect_id = h->dialler ? h->peer_id : 0;
  o.timeout_ms = a->timeout_ms;
  o.alloc = raft_malloc;
  o.release = raft_free;
  o.handshake_done = relayHandshakeDone;
  o.data = h;
  o.closed = relayClosed;
  o.closed_data = ref;
  h->relay = catga_tls_relay_new(a->loop, ctx, &o);
  SSL_CTX_free(ctx);
  if (h->relay == NULL) {
    raft_free(ref);
    return false;
  }
  ref->a = a;
  ref->relay = h->relay;
  ref->prev = NULL;
  ref->next = a->relays;
  if (ref->next != NULL) {
    ref->next->prev = ref;
  }
  a->relays = ref;
  return true;
}

static void peerName(uv_tcp_t *tcp, char *out, size_t len) {
  struct sockaddr_storage sa;
  int n = sizeof sa;
  char ip[64] = "?";
  int port = 0;
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &n) == 0) {
    if (sa.ss_family == AF_INET) {
      const struct sockaddr_in *in = (const struct sockaddr_in *)&sa;
      uv_ip4_name(in, ip, sizeof ip);
      port = ntohs(in->sin_port);
    } else if (sa.ss_family == AF_INET6) {
      const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)&sa;
      uv_ip6_name(in, ip, sizeof ip);
      port = ntohs(in->sin6_port);
    }
  }
  snprintf(out, len, "%s:%d", ip, port);
}

static void closeUnowned(uv_handle_t *handle) { raft_free(handle); }

/* An incoming connection on a TLS port: TLS first, bounded in time. */
static void listenTls(struct catgaAuth *a, uv_stream_t *server) {
  struct handshake *h = handshakeNew(a, false);
  uv_tcp_t *tcp;
  if (h == NULL) {
    return;
  }
  if (!relayFor(h)) {
    handshakeFinish(h, RAFT_NOMEM);
    return;
  }
  tcp = catga_tls_relay_tcp(h->relay);
  if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
    handshakeFinish(h, RAFT_NOCONNECTION);
    return;
  }
  peerName(tcp, h->peer, sizeof h->peer);
  if (a->n_incoming > a->max_pending) {
    authLog(a, false, "raft: connection from %s refused: %u connections already in "
               "the authentication handshake", h->peer, a->n_incoming - 1);
    handshakeFinish(h, RAFT_NOCONNECTION);
    return;
  }
  uv_timer_start(&h->timer, timerCb, a->timeout_ms, 0);
  catga_tls_relay_start(h->relay);
}

static void listenCb(uv_stream_t *server, int status) {
  struct catgaAuth *a = server->data;
  struct handshake *h;
  uv_tcp_t *tcp;
  if (status != 0 || a->closing) {
    return;
  }
  if (a->tls != NULL) {
    listenTls(a, server);
    return;
  }
  tcp = raft_malloc(sizeof *tcp);
  if (tcp == NULL) {
    return;
  }
  uv_tcp_init(a->loop, tcp);
  if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
    uv_close((uv_handle_t *)tcp, closeUnowned);
    return;
  }
  if (a->n_incoming >= a->max_pending) {
    char peer[96];
    peerName(tcp, peer, sizeof peer);
    authLog(a, false, "raft: connection from %s refused: %u connections already in "
               "the authentication handshake", peer, a->n_incoming);
    uv_close((uv_handle_t *)tcp, closeUnowned);
    return;
  }
  h = handshakeNew(a, false);
  if (h == NULL) {
    uv_close((uv_handle_t *)tcp, closeUnowned);
    return;
  }
  peerName(tcp, h->peer, sizeof h->peer);
  handshakeStart(h, (uv_stream_t *)tcp);
}

static struct catgaAuth *authOf(struct raft_uv_transport *t) {
  return t->impl;
}

static int authInit(struct raft_uv_transport *t, raft_id id,
                    const char *address) {
  struct catgaAuth *a = authOf(t);
  a->id = id;
  raft_free(a->address);
  a->address = raft_malloc(strlen(address) + 1);
  if (a->address == NULL) {
    return RAFT_NOMEM;
  }
  strcpy(a->address, address);
  if (a->tls != NULL && catga_tls_context_node_id(a->tls) != id) {
    snprintf(t->errmsg, sizeof t->errmsg,
             "the TLS certificate is for node %llu, this node is %llu",
             (unsigned long long)catga_tls_context_node_id(a->tls),
             (unsigned long long)id);
    return RAFT_INVALID;
  }
  return a->tcp.init(&a->tcp, id, address);
}

/* "host:port" or "[v6]:port" -> bound, listening socket. */
/* "host:port" or "[v6]:port" -> host (brackets removed) and port: 0, or -1
 * without a port, -2 without a valid host. */
static int splitAddress(const char *address, char *host, size_t host_size,
                        const char **port) {
  const char *colon = strrchr(address, ':');
  const char *start = address;
  size_t host_len;
  if (colon == NULL) {
    return -1;
  }
  host_len = (size_t)(colon - start);
  if (host_len >= 2 && start[0] == '[' && colon[-1] == ']') {
    start++;
    host_len -= 2;
  }
  if (host_len == 0 || host_len >= host_size) {
    return -2;
  }
  memcpy(host, start, host_len);
  host[host_len] = '\0';
  *port = colon + 1;
  return 0;
}

static int authListen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
  struct catgaAuth *a = authOf(t);
  char host[256];
  const char *port = NULL;
  struct addrinfo hints;
  uv_getaddrinfo_t req;
  int rv = splitAddress(a->address, host, sizeof host, &port);
  if (rv != 0) {
    snprintf(t->errmsg, sizeof t->errmsg,
             rv == -1 ? "address '%s' has no port" : "address '%s' has no valid host",
             a->address);
    return RAFT_INVALID;
  }
  memset(&hints, 0, sizeof hints);
  /* IPv4, as libraft's dialler resolves (AF_INET): a name such as
   * "localhost" that also resolves to ::1 must not be bound there. */
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  rv = uv_getaddrinfo(a->loop, &req, NULL, host, port, &hints);
  if (rv != 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "resolve %s: %s", a->address,
             uv_strerror(rv));
    return RAFT_IOERR;
  }
  a->listener = raft_malloc(sizeof *a->listener);
  if (a->listener == NULL) {
    uv_freeaddrinfo(req.addrinfo);
    return RAFT_NOMEM;
  }
  uv_tcp_init(a->loop, a->listener);
  a->listener->data = a;
  rv = uv_tcp_bind(a->listener, req.addrinfo->ai_addr, 0);
  uv_freeaddrinfo(req.addrinfo);
  if (rv == 0) {
    rv = uv_listen((uv_stream_t *)a->listener, 128, listenCb);
  }
  if (rv != 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "listen on %s: %s", a->address,
             uv_strerror(rv));
    uv_close((uv_handle_t *)a->listener, closeUnowned);
    a->listener = NULL;
    return RAFT_IOERR;
  }
  a->accept_cb = cb;
  return 0;
}

static void dialled(struct raft_uv_connect *req, struct uv_stream_s *stream,
                    int status) {
  struct handshake *h = req->data;
  if (status != 0 || h->a->closing) {
    if (stream != NULL) {
      uv_close((uv_handle_t *)stream, closeUnowned);
    }
    handshakeFinish(h, status != 0 ? status : RAFT_CANCELED);
    return;
  }
  handshakeStart(h, stream);
}

/* TLS dialler: our own TCP connection (libraft's stock dialler would write
 * its handshake in clear), then TLS, then libraft's handshake inside it. */
static void tlsConnected(uv_connect_t *req, int status) {
  struct handshake *h = req->data;
  h->pending--;
  if (h->done) {
    handshakeRelease(h);
    return;
  }
  if (status != 0) { /* the member is down: libraft retries, no log line */
    handshakeFinish(h, RAFT_NOCONNECTION);
    return;
  }
  uv_timer_start(&h->timer, timerCb, h->a->timeout_ms, 0);
  catga_tls_relay_start(h->relay);
}

static void tlsResolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  struct handshake *h = req->data;
  int rv;
  h->pending--;
  h->resolving = false;
  if (h->done) {
    uv_freeaddrinfo(res);
    handshakeRelease(h);
    return;
  }
  if (status != 0) {
    uv_freeaddrinfo(res);
    handshakeFail(h, uv_strerror(status));
    return;
  }
  if (!relayFor(h)) {
    uv_freeaddrinfo(res);
    handshakeFinish(h, RAFT_NOMEM);
    return;
  }
  h->tcp_connect.data = h;
  rv = uv_tcp_connect(&h->tcp_connect, catga_tls_relay_tcp(h->relay),
                      res->ai_addr, tlsConnected);
  uv_freeaddrinfo(res);
  if (rv != 0) {
    handshakeFinish(h, RAFT_NOCONNECTION);
    return;
  }
  h->pending++;
}

static int authConnect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                       raft_id id, const char *address,
                       raft_uv_connect_cb cb) {
  struct catgaAuth *a = authOf(t);
  struct handshake *h;
  int rv;
  if (a->closing) {
    return RAFT_CANCELED;
  }
  h = handshakeNew(a, true);
  if (h == NULL) {
    return RAFT_NOMEM;
  }
  h->peer_id = id;
  snprintf(h->peer, sizeof h->peer, "%s", address);
  h->outer = req;
  h->outer_cb = cb;
  req->cb = cb;
  h->connect.data = h;
  if (a->tls != NULL) {
    char host[256];
    const char *port;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    h->resolve.data = h;
    rv = splitAddress(address, host, sizeof host, &port) != 0
             ? RAFT_NOCONNECTION
             : uv_getaddrinfo(a->loop, &h->resolve, tlsResolved, host, port,
                              &hints);
    if (rv == 0) {
      h->pending++;
      h->resolving = true;
      return 0;
    }
    rv = RAFT_NOCONNECTION;
  } else {
    rv = a->tcp.connect(&a->tcp, &h->connect, id, address, dialled);
  }
  if (rv != 0) {
    h->done = true; /* no callback for a request refused up front */
    uv_close((uv_handle_t *)&h->timer, handleClosed);
  }
  return rv;
}

static void tcpClosed(struct raft_uv_transport *tcp) {
  struct catgaAuth *a =
      (struct catgaAuth *)((char *)tcp - offsetof(struct catgaAuth, tcp));
  a->tcp_closed = true;
  maybeClosed(a);
}

static void listenerClosed(uv_handle_t *handle) {
  struct catgaAuth *a = handle->data;
  raft_free(handle);
  a->listener = NULL;
  maybeClosed(a);
}

static void authClose(struct raft_uv_transport *t,
                      raft_uv_transport_close_cb cb) {
  struct catgaAuth *a = authOf(t);
  struct handshake *h;
  struct handshake *next;
  a->closing = true;
  a->close_cb = cb;
  if (a->listener != NULL) {
    uv_close((uv_handle_t *)a->listener, listenerClosed);
  }
  /* Handshakes with a connection end now; diallers still connecting are
   * canceled by the stock transport's close (their callback ends them). */
  for (h = a->handshakes; h != NULL; h = next) {
    next = h->next;
    if (h->stream != NULL || a->tls != NULL) {
      handshakeFinish(h, RAFT_CANCELED);
    }
  }
  {
    struct relayRef *ref;
    for (ref = a->relays; ref != NULL; ref = ref->next) {
      catga_tls_relay_close(ref->relay); /* `closed` unlinks it later */
    }
  }
  a->tcp.close(&a->tcp, tcpClosed);
}

/* The secrets of `o` (in memory, or its file); false with `err` filled. */
static bool newSecrets(struct catgaAuth *a, const struct catga_auth_options *o,
                       char *err, size_t err_len) {
  const void *data[1 + CATGA_AUTH_MAX_ACCEPTED];
  size_t len[1 + CATGA_AUTH_MAX_ACCEPTED];
  unsigned n = 0;
  if (o->secret_len > 0) {
    data[n] = o->secret;
    len[n++] = o->secret_len;
    for (unsigned i = 0; i < o->n_accepted; i++) {
      data[n] = o->accepted[i].data;
      len[n++] = o->accepted[i].len;
    }
  }
  a->secrets = catga_peer_secrets_new(o->secret_file, data, len, n,
                                      o->tls_label, err, err_len);
  return a->secrets != NULL;
}

int catga_auth_transport_init(struct raft_uv_transport *t, struct uv_loop_s *loop,
                              const struct catga_auth_options *o) {
  struct catgaAuth *a;
  int rv;
  bool tls = o->tls_ca_file != NULL && o->tls_ca_file[0] != '\0' &&
             o->tls_cert_file != NULL && o->tls_cert_file[0] != '\0' &&
             o->tls_key_file != NULL && o->tls_key_file[0] != '\0';
  bool file = o->secret_file != NULL && o->secret_file[0] != '\0';
  if (t->version != 1 || (o->secret_len == 0 && !file && !tls) ||
      (file && o->secret_len > 0) ||
      o->handshake_timeout_ms == 0 || o->n_accepted > CATGA_AUTH_MAX_ACCEPTED ||
      (o->n_accepted > 0 && o->secret_len == 0)) {
    snprintf(t->errmsg, sizeof t->errmsg, "invalid authenticated transport");
    return RAFT_INVALID;
  }
  for (unsigned i = 0; i < o->n_accepted; i++) {
    if (o->accepted[i].len == 0) {
      snprintf(t->errmsg, sizeof t->errmsg, "an accepted secret is empty");
      return RAFT_INVALID;
    }
  }
  a = raft_malloc(sizeof *a);
  if (a == NULL) {
    return RAFT_NOMEM;
  }
  memset(a, 0, sizeof *a);
  if (!newSecrets(a, o, t->errmsg, sizeof t->errmsg)) {
    raft_free(a);
    return RAFT_INVALID;
  }
  if (tls) {
    struct catga_tls_files files = {o->tls_ca_file, o->tls_cert_file,
                                    o->tls_key_file, o->tls_crl_file,
                                    o->tls_label};
    a->tls = catga_tls_context_new(&files, t->errmsg, sizeof t->errmsg);
    if (a->tls == NULL) {
      catga_peer_secrets_free(a->secrets);
      raft_free(a);
      return RAFT_INVALID;
    }
  }
  a->cluster_id = raft_malloc(strlen(o->cluster_id) + 1);
  if (a->cluster_id == NULL) {
    catga_tls_context_free(a->tls);
    catga_peer_secrets_free(a->secrets);
    raft_free(a);
    return RAFT_NOMEM;
  }
  strcpy(a->cluster_id, o->cluster_id);
  a->timeout_ms = o->handshake_timeout_ms;
  a->max_pending = o->max_pending > 0 ? o->max_pending : 64;
  a->log = o->log;
  a->log_ctx = o->log_ctx;
  a->loop = loop;
  a->tcp.version = 1;
  rv = raft_uv_tcp_init(&a->tcp, loop);
  if (rv != 0) {
    snprintf(t->errmsg, sizeof t->errmsg, "%s", a->tcp.errmsg);
    catga_tls_context_free(a->tls);
    catga_peer_secrets_free(a->secrets);
    raft_free(a->cluster_id);
    raft_free(a);
    return rv;
  }
  a->iface = t;
  t->impl = a;
  t->init = authInit;
  t->listen = authListen;
  t->connect = authConnect;
  t->close = authClose;
  return 0;
}

void catga_auth_transport_close(struct raft_uv_transport *t) {
  struct catgaAuth *a = authOf(t);
  raft_uv_tcp_close(&a->tcp);
  catga_tls_context_free(a->tls);
  catga_peer_secrets_free(a->secrets);
  raft_free(a->cluster_id);
  raft_free(a->address);
  raft_free(a);
  t->impl = NULL;
}
