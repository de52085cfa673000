/* src/cluster/peer_secrets.c — see peer_secrets.h. */
#include "cluster/peer_secrets.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A set and the bytes it points into, freed (wiped) with its last holder. */
struct setBox {
  struct catga_secret_set set; /* first: a set pointer is a box pointer */
  atomic_uint refs;
  size_t bytes;
  uint8_t storage[];
};

struct catga_peer_secrets {
  char *file; /* NULL: in memory, never reloaded */
  char *label;
  pthread_mutex_t mutex;
  struct setBox *current;
  struct catga_peer_secrets *prev, *next; /* in `live` (file-backed only) */
};

/* Every file-backed set alive in the process, for the reload. */
static pthread_mutex_t liveMutex = PTHREAD_MUTEX_INITIALIZER;
static struct catga_peer_secrets *live;

static struct setBox *boxNew(const void *const *data, const size_t *len,
                             unsigned n) {
  size_t bytes = 0;
  struct setBox *box;
  uint8_t *at;
  for (unsigned i = 0; i < n; i++) {
    bytes += len[i];
  }
  box = calloc(1, sizeof *box + bytes);
  if (box == NULL) {
    return NULL;
  }
  atomic_init(&box->refs, 1);
  box->bytes = bytes;
  at = box->storage;
  for (unsigned i = 0; i < n; i++) {
    memcpy(at, data[i], len[i]);
    box->set.data[i] = at;
    box->set.len[i] = len[i];
    at += len[i];
  }
  box->set.n = n;
  return box;
}

static void boxRelease(struct setBox *box) {
  if (box != NULL && atomic_fetch_sub(&box->refs, 1) == 1) {
    OPENSSL_cleanse(box->storage, box->bytes);
    free(box);
  }
}

/* Reads `file` into a new set; NULL with `err` filled. */
static struct setBox *readFile(const char *file, char *err, size_t err_len) {
  enum { kMaxBytes = (1 + CATGA_SECRETS_MAX_ACCEPTED) * (CATGA_SECRETS_MAX_LEN + 1) + 4096 };
  const void *data[1 + CATGA_SECRETS_MAX_ACCEPTED];
  size_t len[1 + CATGA_SECRETS_MAX_ACCEPTED];
  unsigned n = 0, line = 0;
  struct setBox *box = NULL;
  char *text = malloc(kMaxBytes + 1);
  size_t size = 0;
  FILE *f = fopen(file, "rb");
  if (text == NULL || f == NULL) {
    snprintf(err, err_len, "peer secret file %s: %s", file,
             text == NULL ? "out of memory" : "cannot be read");
    goto out;
  }
  size = fread(text, 1, kMaxBytes + 1, f);
  if (ferror(f) || size > kMaxBytes) {
    snprintf(err, err_len, "peer secret file %s: %s", file,
             ferror(f) ? "cannot be read" : "too large");
    goto out;
  }
  for (size_t at = 0; at < size;) {
    const char *start = text + at;
    const char *end = memchr(start, '\n', size - at);
    size_t l = end != NULL ? (size_t)(end - start) : size - at;
    at += l + 1;
    line++;
    if (l == 0 && line > 1) {
      continue; /* blank lines after the first one are ignored */
    }
    if (n == 1 + CATGA_SECRETS_MAX_ACCEPTED) {
      snprintf(err, err_len, "peer secret file %s: more than %d accepted secrets",
               file, CATGA_SECRETS_MAX_ACCEPTED);
      goto out;
    }
    if (l < CATGA_SECRETS_MIN_LEN || l > CATGA_SECRETS_MAX_LEN) {
      snprintf(err, err_len,
               "peer secret file %s:%u: %s (each secret %d to %d bytes)", file,
               line,
               line == 1 && l == 0 ? "no secret on the first line"
               : l < CATGA_SECRETS_MIN_LEN ? "secret too short"
                                           : "secret too long",
               CATGA_SECRETS_MIN_LEN, CATGA_SECRETS_MAX_LEN);
      goto out;
    }
    data[n] = start;
    len[n] = l;
    n++;
  }
  if (n == 0) {
    snprintf(err, err_len, "peer secret file %s: empty (its first line is the secret)", file);
    goto out;
  }
  box = boxNew(data, len, n);
  if (box == NULL) {
    snprintf(err, err_len, "peer secret file %s: out of memory", file);
  }
out:
  if (f != NULL) {
    fclose(f);
  }
  if (text != NULL) {
    OPENSSL_cleanse(text, size < kMaxBytes + 1 ? size : kMaxBytes + 1);
    free(text);
  }
  return box;
}

struct catga_peer_secrets *catga_peer_secrets_new(const char *file,
                                                  const void *const *data,
                                                  const size_t *len, unsigned n,
                                                  const char *label, char *err,
                                                  size_t err_len) {
  struct catga_peer_secrets *s = calloc(1, sizeof *s);
  const bool from_file = file != NULL && file[0] != '\0';
  if (s == NULL) {
    snprintf(err, err_len, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->mutex, NULL);
  s->label = strdup(label != NULL ? label : "peer secrets");
  s->file = from_file ? strdup(file) : NULL;
  if (s->label == NULL || (from_file && s->file == NULL)) {
    snprintf(err, err_len, "out of memory");
  } else if (from_file && n > 0) {
    snprintf(err, err_len, "peer secrets given both in memory and in %s", file);
  } else if (n > 1 + CATGA_SECRETS_MAX_ACCEPTED) {
    snprintf(err, err_len, "more than %d accepted secrets", CATGA_SECRETS_MAX_ACCEPTED);
  } else if (from_file) {
    s->current = readFile(file, err, err_len);
  } else if ((s->current = boxNew(data, len, n)) == NULL) {
    snprintf(err, err_len, "out of memory");
  }
  if (s->current == NULL) {
    catga_peer_secrets_free(s);
    return NULL;
  }
  if (from_file) {
    pthread_mutex_lock(&liveMutex);
    s->next = live;
    if (live != NULL) {
      live->prev = s;
    }
    live = s;
    pthread_mutex_unlock(&liveMutex);
  }
  return s;
}

void catga_peer_secrets_free(struct catga_peer_secrets *s) {
  if (s == NULL) {
    return;
  }
  if (s->file != NULL && s->current != NULL) { /* fully built: in `live` */
    pthread_mutex_lock(&liveMutex);
    if (s->prev != NULL) {
      s->prev->next = s->next;
    } else {
      live = s->next;
    }
    if (s->next != NULL) {
      s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&liveMutex);
  }
  boxRelease(s->current);
  pthread_mutex_destroy(&s->mutex);
  free(s->file);
  free(s->label);
  free(s);
}

const struct catga_secret_set *catga_peer_secrets_acquire(
    struct catga_peer_secrets *s) {
  struct setBox *box;
  pthread_mutex_lock(&s->mutex);
  box = s->current;
  atomic_fetch_add(&box->refs, 1);
  pthread_mutex_unlock(&s->mutex);
  return &box->set;
}

void catga_secret_set_release(const struct catga_secret_set *set) {
  boxRelease((struct setBox *)set);
}

unsigned catga_peer_secrets_reload_all(
    void (*report)(void *data, const char *line), void *data) {
  unsigned n = 0;
  char line[1200];
  char why[800];
  pthread_mutex_lock(&liveMutex);
  for (struct catga_peer_secrets *s = live; s != NULL; s = s->next, n++) {
    struct setBox *fresh = readFile(s->file, why, sizeof why);
    if (fresh != NULL) {
      struct setBox *old;
      pthread_mutex_lock(&s->mutex);
      old = s->current;
      s->current = fresh;
      pthread_mutex_unlock(&s->mutex);
      boxRelease(old);
      snprintf(line, sizeof line,
               "%s: peer secrets reloaded from %s (its own and %u more "
               "accepted)",
               s->label, s->file, fresh->set.n - 1);
    } else {
      snprintf(line, sizeof line,
               "%s: peer secrets not reloaded: %s (keeping the previous "
               "secrets)",
               s->label, why);
    }
    if (report != NULL) {
      report(data, line);
    }
  }
  pthread_mutex_unlock(&liveMutex);
  return n;
}

int catga_peer_secrets_check_file(const char *file, char *err, size_t err_len) {
  struct setBox *box = readFile(file, err, err_len);
  boxRelease(box);
  return box != NULL ? 0 : -1;
}
