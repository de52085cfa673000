/* src/cluster/peer_secrets.h — the cluster secrets of one transport (the Raft
 * port's or a peer channel's), reloadable without a restart.
 *
 * The secrets are this node's own (the one it proves itself with, number 0)
 * and those it also accepts from peers during a rotation (docs/security.md).
 * Given in memory, they stay as given. Read from a file — its first line is
 * the node's own secret, each further non-empty line one more accepted
 * secret — they are read again, for new connections, by
 * catga_peer_secrets_reload_all (SIGHUP): a rotation needs no restart. A file
 * that does not read (missing, a secret under 16 bytes, more than 8 accepted)
 * keeps the previous secrets and says why.
 *
 * A connection takes the current set once, at its start, and keeps it to its
 * end (catga_peer_secrets_acquire / catga_secret_set_release): a reload never
 * changes the secrets of a handshake half done.
 *
 * Threading: every function may be called from any thread. */
#ifndef CATGA_SRC_CLUSTER_PEER_SECRETS_H
#define CATGA_SRC_CLUSTER_PEER_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  CATGA_SECRETS_MAX_ACCEPTED = 8,
  CATGA_SECRETS_MIN_LEN = 16,
  CATGA_SECRETS_MAX_LEN = 4096,
};

/* An immutable set: n == 0 means no secret (TLS alone). */
struct catga_secret_set {
  unsigned n; /* secrets[0] proves this node; all are accepted */
  const uint8_t *data[1 + CATGA_SECRETS_MAX_ACCEPTED];
  size_t len[1 + CATGA_SECRETS_MAX_ACCEPTED];
};

struct catga_peer_secrets;

/* The secrets of one transport: from `file` when it is not NULL or "" (the
 * in-memory ones must then be empty), else the `n` in-memory ones (data[i],
 * len[i]; n may be 0). `label` names them in reload reports ("raft node 1").
 * NULL on failure, with `err` saying why (the file's name and line). */
struct catga_peer_secrets *catga_peer_secrets_new(const char *file,
                                                  const void *const *data,
                                                  const size_t *len, unsigned n,
                                                  const char *label, char *err,
                                                  size_t err_len);
void catga_peer_secrets_free(struct catga_peer_secrets *s);

/* The current set; the caller holds it until catga_secret_set_release. */
const struct catga_secret_set *catga_peer_secrets_acquire(
    struct catga_peer_secrets *s);
void catga_secret_set_release(const struct catga_secret_set *set);

/* Reads every live file-backed set's file again and calls `report` once per
 * set with one line: reloaded (with the number of secrets), or why not (the
 * previous secrets stay). Returns the number of sets. */
unsigned catga_peer_secrets_reload_all(
    void (*report)(void *data, const char *line), void *data);

/* Reads and checks a secret file without keeping it: 0, or -1 with `err`
 * filled (ClusterOptions::validate). */
int catga_peer_secrets_check_file(const char *file, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* CATGA_SRC_CLUSTER_PEER_SECRETS_H */
