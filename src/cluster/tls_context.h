/* src/cluster/tls_context.h — mutual TLS 1.3 credentials of one node, shared
 * by the Raft transport (tls_relay.c) and the peer channel.
 *
 * A node's identity is its certificate: the subject common name must be
 * exactly "node-<id>" (decimal, no leading zero), signed by the cluster's CA
 * (the only trust anchor loaded: one CA per cluster keeps clusters apart).
 * A peer is accepted only when its certificate chains to that CA, is within
 * its validity period, and names the node id the connection claims (the id
 * libraft's handshake carries, or the member being dialled).
 *
 * An optional CRL file (PEM, from the cluster CA) makes every handshake
 * refuse a revoked peer certificate (X509_V_FLAG_CRL_CHECK: the peer's own
 * certificate; a list past its next update fails every peer).
 *
 * The files are read again, for new connections, when any of them changed
 * (modification time, size or inode; checked at most once a second), or at
 * once for every live context by catga_tls_context_reload_all (SIGHUP):
 * certificates reload without a restart. A reload that fails (a file
 * half-written, a key that does not match) keeps the previous credentials
 * and reports why once.
 *
 * Threading: every function may be called from any thread. */
#ifndef CATGA_SRC_CLUSTER_TLS_CONTEXT_H
#define CATGA_SRC_CLUSTER_TLS_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ssl_ctx_st;
struct ssl_st;
struct catga_tls_context;

struct catga_tls_files {
  const char *ca_file;   /* PEM: the cluster's CA certificate(s) */
  const char *cert_file; /* PEM: this node's certificate (chain) */
  const char *key_file;  /* PEM: its private key */
  const char *crl_file;  /* PEM: revocation lists; NULL or "": none */
  const char *label;     /* who uses it, in reload reports ("raft node 1") */
};

/* Loads the files. NULL on failure, with `err` saying which file and why. */
struct catga_tls_context *catga_tls_context_new(const struct catga_tls_files *files,
                                                char *err, size_t err_len);
void catga_tls_context_free(struct catga_tls_context *c);

/* The current SSL_CTX (TLS 1.3 only, peer certificate required and
 * verified), reloaded first if a file changed; the caller owns one
 * reference (SSL_CTX_free). When a reload failed and `err` is not NULL,
 * `err` is filled once with why (and the previous context returned);
 * otherwise err[0] is set to '\0'. */
struct ssl_ctx_st *catga_tls_context_get(struct catga_tls_context *c, char *err,
                                         size_t err_len);

/* Reloads every live context now (whether or not a file changed) and
 * calls `report` once per context with one line: what was reloaded, or why
 * not (the previous credentials stay). Returns the number of contexts. */
unsigned catga_tls_context_reload_all(void (*report)(void *data, const char *line),
                                      void *data);

/* The node id this node's certificate names (a reload that names another
 * one is refused). */
uint64_t catga_tls_context_node_id(const struct catga_tls_context *c);

/* The node id a certificate common name "node-<id>" names: 0 when it names
 * none (pure; fuzzed in tests/fuzz/fuzz_tls_identity.cc). */
uint64_t catga_tls_parse_node_name(const char *name, size_t len);

/* The node id of the verified peer certificate of a finished handshake, or
 * 0 when there is none or it names no node (`err` says why). */
uint64_t catga_tls_peer_node_id(struct ssl_st *ssl, char *err, size_t err_len);

/* Why the last handshake of `ssl` failed, as one short phrase (OpenSSL's
 * reason, with the certificate verification result when that failed). */
void catga_tls_describe_failure(struct ssl_st *ssl, char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CATGA_SRC_CLUSTER_TLS_CONTEXT_H */
