/* src/cluster/tls_context.c — see tls_context.h. */
#include "cluster/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct fileStamp {
  struct timespec mtime;
  off_t size;
  ino_t ino;
};

enum { kFiles = 4 }; /* ca, cert, key, crl ("" when none) */

struct catga_tls_context {
  char *files[kFiles];
  char *label;
  struct fileStamp stamps[kFiles];
  struct catga_tls_context *prev, *next; /* in `live` */
  pthread_mutex_t mutex;
  SSL_CTX *ctx;
  uint64_t node_id; /* the one the first certificate named; reloads keep it */
  time_t checked; /* last stat, seconds */
  bool report;    /* a failed reload not reported yet */
  char failure[256];
};

/* Every context alive in the process, for catga_tls_context_reload_all. */
static pthread_mutex_t liveMutex = PTHREAD_MUTEX_INITIALIZER;
static struct catga_tls_context *live;

static void stampOf(const char *path, struct fileStamp *s) {
  struct stat st;
  memset(s, 0, sizeof *s);
  if (stat(path, &st) == 0) {
    s->mtime = st.st_mtim;
    s->size = st.st_size;
    s->ino = st.st_ino;
  }
}

static bool sameStamp(const struct fileStamp *a, const struct fileStamp *b) {
  return a->mtime.tv_sec == b->mtime.tv_sec &&
         a->mtime.tv_nsec == b->mtime.tv_nsec && a->size == b->size &&
         a->ino == b->ino;
}

static void opensslReason(char *out, size_t len) {
  unsigned long e = ERR_get_error();
  unsigned long last = e;
  while (e != 0) {
    last = e;
    e = ERR_get_error();
  }
  if (last == 0) {
    snprintf(out, len, "unknown error");
    return;
  }
  {
    const char *reason = ERR_reason_error_string(last);
    snprintf(out, len, "%s", reason != NULL ? reason : "unknown error");
  }
}

/* Adds the CRLs of `path` to the context's trust store and turns on the
 * revocation check of the peer's certificate; false with `err` filled. */
static bool loadCrl(SSL_CTX *ctx, const char *path, char *err, size_t err_len) {
  char why[160];
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
  if (lookup == NULL || X509_load_crl_file(lookup, path, X509_FILETYPE_PEM) <= 0) {
    opensslReason(why, sizeof why);
    snprintf(err, err_len, "TLS CRL file %s: %s", path, why);
    return false;
  }
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  return true;
}

static SSL_CTX *loadContext(char *const files[kFiles], uint64_t *node_id,
                            char *err, size_t err_len) {
  char why[160];
  SSL_CTX *ctx = SSL_CTX_new(TLS_method());
  ERR_clear_error();
  if (ctx == NULL) {
    snprintf(err, err_len, "OpenSSL cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  if (SSL_CTX_load_verify_locations(ctx, files[0], NULL) != 1) {
    opensslReason(why, sizeof why);
    snprintf(err, err_len, "TLS CA file %s: %s", files[0], why);
  } else if (SSL_CTX_use_certificate_chain_file(ctx, files[1]) != 1) {
    opensslReason(why, sizeof why);
    snprintf(err, err_len, "TLS certificate file %s: %s", files[1], why);
  } else if (SSL_CTX_use_PrivateKey_file(ctx, files[2], SSL_FILETYPE_PEM) != 1) {
    opensslReason(why, sizeof why);
    snprintf(err, err_len, "TLS key file %s: %s", files[2], why);
  } else if (SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(err, err_len, "TLS key file %s does not match certificate %s",
             files[2], files[1]);
  } else if (files[3][0] != '\0' && !loadCrl(ctx, files[3], err, err_len)) {
    /* err says why */
  } else {
    X509 *own = SSL_CTX_get0_certificate(ctx);
    char cn[64] = "";
    int n = own != NULL ? X509_NAME_get_text_by_NID(X509_get_subject_name(own),
                                                    NID_commonName, cn,
                                                    sizeof cn)
                        : -1;
    uint64_t id = n > 0 ? catga_tls_parse_node_name(cn, (size_t)n) : 0;
    if (id == 0) {
      snprintf(err, err_len,
               "TLS certificate %s: its subject common name must be "
               "\"node-<id>\" (found \"%s\")",
               files[1], n > 0 ? cn : "");
    } else if (*node_id != 0 && id != *node_id) {
      snprintf(err, err_len,
               "TLS certificate %s is for node %llu, this node is %llu",
               files[1], (unsigned long long)id, (unsigned long long)*node_id);
    } else {
      *node_id = id;
      ERR_clear_error();
      return ctx;
    }
  }
  ERR_clear_error();
  SSL_CTX_free(ctx);
  return NULL;
}

struct catga_tls_context *catga_tls_context_new(const struct catga_tls_files *f,
                                                char *err, size_t err_len) {
  struct catga_tls_context *c = calloc(1, sizeof *c);
  const char *paths[kFiles] = {f->ca_file, f->cert_file, f->key_file,
                               f->crl_file};
  if (c == NULL) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&c->mutex, NULL);
  c->label = strdup(f->label != NULL ? f->label : "TLS");
  for (int i = 0; i < kFiles; i++) {
    c->files[i] = strdup(paths[i] != NULL ? paths[i] : "");
    if (c->files[i] == NULL || c->label == NULL) {
      snprintf(err, err_len, "out of memory");
      catga_tls_context_free(c);
      return NULL;
    }
    stampOf(c->files[i], &c->stamps[i]);
  }
  c->ctx = loadContext(c->files, &c->node_id, err, err_len);
  if (c->ctx == NULL) {
    catga_tls_context_free(c);
    return NULL;
  }
  c->checked = time(NULL);
  pthread_mutex_lock(&liveMutex);
  c->next = live;
  if (live != NULL) {
    live->prev = c;
  }
  live = c;
  pthread_mutex_unlock(&liveMutex);
  return c;
}

void catga_tls_context_free(struct catga_tls_context *c) {
  if (c == NULL) {
    return;
  }
  if (c->ctx != NULL) { /* fully built: it is in `live` */
    pthread_mutex_lock(&liveMutex);
    if (c->prev != NULL) {
      c->prev->next = c->next;
    } else {
      live = c->next;
    }
    if (c->next != NULL) {
      c->next->prev = c->prev;
    }
    pthread_mutex_unlock(&liveMutex);
  }
  SSL_CTX_free(c->ctx);
  pthread_mutex_destroy(&c->mutex);
  for (int i = 0; i < kFiles; i++) {
    free(c->files[i]);
  }
  free(c->label);
  free(c);
}

/* Under the mutex: reads the files again; false (c->failure says why) when
 * they do not load, and the previous context stays. */
static bool reload(struct catga_tls_context *c) {
  SSL_CTX *fresh =
      loadContext(c->files, &c->node_id, c->failure, sizeof c->failure);
  if (fresh == NULL) {
    return false;
  }
  SSL_CTX_free(c->ctx);
  c->ctx = fresh;
  return true;
}

/* Under the mutex: reload when a file changed since the last load. */
static void maybeReload(struct catga_tls_context *c) {
  struct fileStamp now[kFiles];
  bool changed = false;
  time_t t = time(NULL);
  if (t == c->checked) {
    return;
  }
  c->checked = t;
  for (int i = 0; i < kFiles; i++) {
    stampOf(c->files[i], &now[i]);
    changed = changed || !sameStamp(&now[i], &c->stamps[i]);
  }
  if (!changed) {
    return;
  }
  memcpy(c->stamps, now, sizeof now);
  if (!reload(c)) {
    c->report = true;
  }
}

unsigned catga_tls_context_reload_all(void (*report)(void *data, const char *line),
                                      void *data) {
  unsigned n = 0;
  char line[1200];
  pthread_mutex_lock(&liveMutex);
  for (struct catga_tls_context *c = live; c != NULL; c = c->next, n++) {
    pthread_mutex_lock(&c->mutex);
    for (int i = 0; i < kFiles; i++) {
      stampOf(c->files[i], &c->stamps[i]);
    }
    c->checked = time(NULL);
    if (reload(c)) {
      c->report = false;
      snprintf(line, sizeof line,
               "%s: TLS credentials reloaded (CA %s, certificate %s, key %s%s%s)",
               c->label, c->files[0], c->files[1], c->files[2],
               c->files[3][0] != '\0' ? ", CRL " : "", c->files[3]);
    } else {
      snprintf(line, sizeof line,
               "%s: TLS credentials not reloaded: %s (keeping the previous "
               "credentials)",
               c->label, c->failure);
    }
    pthread_mutex_unlock(&c->mutex);
    if (report != NULL) {
      report(data, line);
    }
  }
  pthread_mutex_unlock(&liveMutex);
  return n;
}

struct ssl_ctx_st *catga_tls_context_get(struct catga_tls_context *c, char *err,
                                         size_t err_len) {
  SSL_CTX *ctx;
  pthread_mutex_lock(&c->mutex);
  maybeReload(c);
  if (err != NULL && err_len > 0) {
    err[0] = '\0';
    if (c->report) {
      snprintf(err, err_len, "%s (keeping the previous credentials)",
               c->failure);
      c->report = false;
    }
  }
  ctx = c->ctx;
  SSL_CTX_up_ref(ctx);
  pthread_mutex_unlock(&c->mutex);
  return ctx;
}

uint64_t catga_tls_parse_node_name(const char *name, size_t len) {
  static const char prefix[] = "node-";
  const size_t plen = sizeof prefix - 1;
  uint64_t id = 0;
  if (len <= plen || len > plen + 20 || memcmp(name, prefix, plen) != 0 ||
      name[plen] == '0') {
    return 0;
  }
  for (size_t i = plen; i < len; i++) {
    unsigned d;
    if (name[i] < '0' || name[i] > '9') {
      return 0;
    }
    d = (unsigned)(name[i] - '0');
    if (id > (UINT64_MAX - d) / 10) {
      return 0;
    }
    id = id * 10 + d;
  }
  return id;
}

uint64_t catga_tls_peer_node_id(struct ssl_st *ssl, char *err, size_t err_len) {
  X509 *peer = SSL_get0_peer_certificate(ssl);
  X509_NAME *subject;
  int index;
  uint64_t id = 0;
  if (peer == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
    snprintf(err, err_len, "no verified peer certificate");
    return 0;
  }
  subject = X509_get_subject_name(peer);
  index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0 &&
      X509_NAME_get_index_by_NID(subject, NID_commonName, index) < 0) {
    const ASN1_STRING *cn =
        X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    id = catga_tls_parse_node_name((const char *)ASN1_STRING_get0_data(cn),
                                   (size_t)ASN1_STRING_length(cn));
  }
  if (id == 0) {
    snprintf(err, err_len,
             "the peer certificate names no node (its subject needs exactly "
             "one common name \"node-<id>\")");
  }
  return id;
}

void catga_tls_describe_failure(struct ssl_st *ssl, char *out, size_t len) {
  long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
  char why[160];
  opensslReason(why, sizeof why);
  if (verify != X509_V_OK) {
    snprintf(out, len, "%s: %s", why, X509_verify_cert_error_string(verify));
  } else {
    snprintf(out, len, "%s", why);
  }
}

uint64_t catga_tls_context_node_id(const struct catga_tls_context *c) {
  return c->node_id;
}
