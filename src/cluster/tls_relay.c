/* src/cluster/tls_relay.c — see tls_relay.h. */
#include "cluster/tls_relay.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/tls_context.h"

enum { READ_CHUNK = 64 * 1024 };

struct catga_tls_relay {
  uv_loop_t *loop;
  struct catga_tls_relay_options o;
  SSL *ssl;
  BIO *rbio; /* ciphertext from TCP, read by OpenSSL */
  BIO *wbio; /* ciphertext from OpenSSL, written to TCP */
  uv_tcp_t tcp;
  uv_pipe_t outer;  /* our end of the socketpair */
  uv_pipe_t *inner; /* the caller's end until handed over */
  uv_timer_t timer;
  unsigned open_handles;
  bool outer_open;
  bool handshaken;
  bool reported; /* handshake_done called, or no longer wanted */
  bool closing;
  bool draining; /* close_notify queued: close once TCP writes are out */
  bool tcp_paused;
  bool pair_paused;
  size_t to_tcp;  /* bytes queued on TCP */
  size_t to_pair; /* bytes queued on the socketpair */
  char in[READ_CHUNK];
};

struct relayWrite {
  uv_write_t req;
  struct catga_tls_relay *r;
  bool to_tcp;
  size_t len;
  char data[];
};

static void teardown(struct catga_tls_relay *r);
static void timedOut(uv_timer_t *timer);

static void handleClosed(uv_handle_t *handle) {
  struct catga_tls_relay *r = handle->data;
  if (handle == (uv_handle_t *)r->inner) {
    r->o.release(handle);
    r->inner = NULL;
  }
  if (--r->open_handles > 0) {
    return;
  }
  SSL_free(r->ssl); /* frees both BIOs */
  if (r->o.closed != NULL) {
    r->o.closed(r->o.closed_data);
  }
  free(r);
}

static void fail(struct catga_tls_relay *r, const char *why) {
  if (!r->reported && !r->closing) {
    r->reported = true;
    r->o.handshake_done(r->o.data, -1, why, 0, NULL);
  }
  teardown(r);
}

static void failTls(struct catga_tls_relay *r, const char *what) {
  char why[256];
  char line[320];
  catga_tls_describe_failure(r->ssl, why, sizeof why);
  snprintf(line, sizeof line, "%s: %s", what, why);
  fail(r, line);
}

static void resumeReading(struct catga_tls_relay *r);

static void writeDone(uv_write_t *req, int status) {
  struct relayWrite *w = (struct relayWrite *)req;
  struct catga_tls_relay *r = w->r;
  if (w->to_tcp) {
    r->to_tcp -= w->len;
  } else {
    r->to_pair -= w->len;
  }
  free(w);
  if (r->closing) {
    return;
  }
  if (status != 0) {
    fail(r, uv_strerror(status));
    return;
  }
  if (r->draining && r->to_tcp == 0) {
    teardown(r);
    return;
  }
  resumeReading(r);
}

static struct relayWrite *newWrite(struct catga_tls_relay *r, bool to_tcp,
                                   size_t capacity) {
  struct relayWrite *w = malloc(sizeof *w + capacity);
  if (w != NULL) {
    w->r = r;
    w->to_tcp = to_tcp;
    w->len = 0;
    w->req.data = w;
  }
  return w;
}

static bool queueWrite(struct catga_tls_relay *r, struct relayWrite *w) {
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
  uv_stream_t *to = w->to_tcp ? (uv_stream_t *)&r->tcp : (uv_stream_t *)&r->outer;
  int rv = uv_write(&w->req, to, &buf, 1, writeDone);
  if (rv != 0) {
    free(w);
    fail(r, uv_strerror(rv));
    return false;
  }
  if (w->to_tcp) {
    r->to_tcp += w->len;
  } else {
    r->to_pair += w->len;
  }
  return true;
}

/* Sends whatever ciphertext OpenSSL produced. */
static bool flushTls(struct catga_tls_relay *r) {
  size_t pending;
  while ((pending = BIO_ctrl_pending(r->wbio)) > 0) {
    struct relayWrite *w = newWrite(r, true, pending);
    int n;
    if (w == NULL) {
      fail(r, "out of memory");
      return false;
    }
    n = BIO_read(r->wbio, w->data, (int)pending);
    if (n <= 0) {
      free(w);
      fail(r, "TLS output unavailable");
      return false;
    }
    w->len = (size_t)n;
    if (!queueWrite(r, w)) {
      return false;
    }
  }
  return true;
}

/* Decrypts what TCP delivered into the socketpair: every record that is
 * complete goes out in one write (one allocation, one uv_write, so one
 * wakeup of libraft's reader per TCP read rather than one per record). The
 * plaintext is never longer than the ciphertext waiting plus what OpenSSL
 * already decrypted, so that bounds the buffer. */
static void pumpFromTls(struct catga_tls_relay *r) {
  size_t capacity = BIO_ctrl_pending(r->rbio) + (size_t)SSL_pending(r->ssl);
  struct relayWrite *w;
  bool ended = false;
  if (capacity == 0 || r->closing) {
    goto flush;
  }
  w = newWrite(r, false, capacity);
  if (w == NULL) {
    fail(r, "out of memory");
    return;
  }
  while (w->len < capacity) {
    int n = SSL_read(r->ssl, w->data + w->len, (int)(capacity - w->len));
    if (n <= 0) {
      /* WANT_READ: the rest of a record is still on its way. Otherwise
       * close_notify or a broken session: the caller sees EOF after what
       * came before it. */
      ended = SSL_get_error(r->ssl, n) != SSL_ERROR_WANT_READ;
      break;
    }
    w->len += (size_t)n;
  }
  if (w->len == 0) {
    free(w);
  } else if (!queueWrite(r, w)) {
    return;
  }
  if (ended) {
    ERR_clear_error();
    teardown(r);
    return;
  }
flush:
  if (!flushTls(r)) {
    return;
  }
  if (r->to_pair > CATGA_TLS_RELAY_QUEUE && !r->tcp_paused) {
    uv_read_stop((uv_stream_t *)&r->tcp);
    r->tcp_paused = true;
  }
}

static void allocIn(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  struct catga_tls_relay *r = handle->data;
  (void)suggested;
  buf->base = r->in;
  buf->len = sizeof r->in;
}

static void pairRead(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct catga_tls_relay *r = stream->data;
  if (nread == 0 || r->closing) {
    return;
  }
  if (nread < 0) {
    /* The caller closed its end: say goodbye, then close once it is out. */
    uv_read_stop(stream);
    SSL_shutdown(r->ssl);
    r->draining = true;
    /* A peer that reads nothing more cannot hold the connection open. */
    uv_timer_start(&r->timer, timedOut, r->o.timeout_ms, 0);
    if (flushTls(r) && r->to_tcp == 0) {
      teardown(r);
    }
    return;
  }
  if (SSL_write(r->ssl, buf->base, (int)nread) != (int)nread) {
    failTls(r, "TLS write failed");
    return;
  }
  if (!flushTls(r)) {
    return;
  }
  if (r->to_tcp > CATGA_TLS_RELAY_QUEUE && !r->pair_paused) {
    uv_read_stop(stream);
    r->pair_paused = true;
  }
}

static void tcpRead(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void resumeReading(struct catga_tls_relay *r) {
  if (r->tcp_paused && r->to_pair <= CATGA_TLS_RELAY_QUEUE / 2) {
    r->tcp_paused = false;
    uv_read_start((uv_stream_t *)&r->tcp, allocIn, tcpRead);
  }
  if (r->pair_paused && !r->draining && r->to_tcp <= CATGA_TLS_RELAY_QUEUE / 2) {
    r->pair_paused = false;
    uv_read_start((uv_stream_t *)&r->outer, allocIn, pairRead);
  }
}

/* The handshake succeeded: check the peer, open the socketpair, hand over. */
static void handshaken(struct catga_tls_relay *r) {
  char why[256];
  uint64_t id;
  int fds[2];
  uv_pipe_t *inner;
  r->handshaken = true;
  uv_timer_stop(&r->timer);
  id = catga_tls_peer_node_id(r->ssl, why, sizeof why);
  if (id == 0) {
    fail(r, why);
    return;
  }
  if (r->o.expect_id != 0 && id != r->o.expect_id) {
    snprintf(why, sizeof why,
             "its TLS certificate is for node %llu, not node %llu",
             (unsigned long long)id, (unsigned long long)r->o.expect_id);
    fail(r, why);
    return;
  }
  inner = r->o.alloc(sizeof *inner);
  if (inner == NULL) {
    fail(r, "out of memory");
    return;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    r->o.release(inner);
    fail(r, "socketpair failed");
    return;
  }
  uv_pipe_init(r->loop, inner, 0);
  uv_pipe_init(r->loop, &r->outer, 0);
  inner->data = r;
  r->outer.data = r;
  r->inner = inner;
  r->open_handles += 2;
  r->outer_open = true;
  if (uv_pipe_open(inner, fds[0]) != 0) {
    close(fds[0]);
    close(fds[1]);
    fail(r, "socketpair cannot be opened");
    return;
  }
  if (uv_pipe_open(&r->outer, fds[1]) != 0) {
    close(fds[1]);
    fail(r, "socketpair cannot be opened");
    return;
  }
  if (uv_read_start((uv_stream_t *)&r->outer, allocIn, pairRead) != 0) {
    fail(r, "socketpair cannot be read");
    return;
  }
  r->inner = NULL;
  r->reported = true;
  inner->data = NULL;
  r->o.handshake_done(r->o.data, 0, NULL, id, (uv_stream_t *)inner);
  /* Application data that came with the handshake's last flight. */
  pumpFromTls(r);
}

static void driveHandshake(struct catga_tls_relay *r) {
  int rv = SSL_do_handshake(r->ssl);
  if (!flushTls(r)) {
    return;
  }
  if (rv == 1) {
    handshaken(r);
    return;
  }
  if (SSL_get_error(r->ssl, rv) != SSL_ERROR_WANT_READ) {
    failTls(r, "TLS handshake failed");
  }
}

static void tcpRead(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  struct catga_tls_relay *r = stream->data;
  if (nread == 0 || r->closing) {
    return;
  }
  if (nread < 0) {
    if (!r->handshaken) {
      fail(r, nread == UV_EOF ? "closed during the TLS handshake (a "
                                "plaintext client?)"
                              : uv_strerror((int)nread));
    } else {
      teardown(r);
    }
    return;
  }
  if (BIO_write(r->rbio, buf->base, (int)nread) != (int)nread) {
    fail(r, "out of memory");
    return;
  }
  if (!r->handshaken) {
    driveHandshake(r);
  } else {
    pumpFromTls(r);
  }
}

static void timedOut(uv_timer_t *timer) {
  struct catga_tls_relay *r = timer->data;
  char why[96];
  if (r->handshaken) {
    teardown(r); /* draining took too long */
    return;
  }
  snprintf(why, sizeof why, "TLS handshake not completed within %u ms",
           r->o.timeout_ms);
  fail(r, why);
}

struct catga_tls_relay *catga_tls_relay_new(uv_loop_t *loop, SSL_CTX *ctx,
                                            const struct catga_tls_relay_options *o) {
  struct catga_tls_relay *r = calloc(1, sizeof *r);
  if (r == NULL) {
    return NULL;
  }
  r->ssl = SSL_new(ctx);
  r->rbio = BIO_new(BIO_s_mem());
  r->wbio = BIO_new(BIO_s_mem());
  if (r->ssl == NULL || r->rbio == NULL || r->wbio == NULL) {
    SSL_free(r->ssl);
    BIO_free(r->rbio);
    BIO_free(r->wbio);
    free(r);
    return NULL;
  }
  SSL_set_bio(r->ssl, r->rbio, r->wbio);
  if (o->server) {
    SSL_set_accept_state(r->ssl);
  } else {
    SSL_set_connect_state(r->ssl);
  }
  r->loop = loop;
  r->o = *o;
  uv_tcp_init(loop, &r->tcp);
  uv_timer_init(loop, &r->timer);
  r->tcp.data = r;
  r->timer.data = r;
  r->open_handles = 2;
  return r;
}

uv_tcp_t *catga_tls_relay_tcp(struct catga_tls_relay *r) { return &r->tcp; }

void catga_tls_relay_start(struct catga_tls_relay *r) {
  int rv;
  if (r->closing) {
    return;
  }
  uv_tcp_nodelay(&r->tcp, 1);
  uv_timer_start(&r->timer, timedOut, r->o.timeout_ms, 0);
  rv = uv_read_start((uv_stream_t *)&r->tcp, allocIn, tcpRead);
  if (rv != 0) {
    fail(r, uv_strerror(rv));
    return;
  }
  if (!r->o.server) {
    driveHandshake(r); /* ClientHello */
  }
}

static void teardown(struct catga_tls_relay *r) {
  if (r->closing) {
    return;
  }
  r->closing = true;
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, handleClosed);
  uv_close((uv_handle_t *)&r->tcp, handleClosed);
  if (r->outer_open) {
    uv_close((uv_handle_t *)&r->outer, handleClosed);
  }
  if (r->inner != NULL) {
    uv_close((uv_handle_t *)r->inner, handleClosed);
  }
}

void catga_tls_relay_close(struct catga_tls_relay *r) {
  r->reported = true;
  teardown(r);
}
