// Throwaway TLS credentials for tests, generated with OpenSSL's C API into a
// directory (no CLI, no files in the repository): a cluster CA, per-node
// certificates whose subject common name is "node-<id>" (the identity
// binding of docs/security.md), an expired one, one signed by another CA,
// and revocation lists.
// Every certificate also names localhost and 127.0.0.1, so HTTPS tests can
// use the same files. Keys are P-256. Not thread-safe; files are PEM.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace testsupport {

struct TlsFiles {
  std::filesystem::path ca_file;
  std::filesystem::path cert_file;
  std::filesystem::path key_file;
  long serial = 0;  // the certificate's serial number (for a CRL)
};

// Writes to `path` (atomically: a new file renamed over it) a CRL of the CA
// `issuer` (signed with `key`) revoking the certificates with these serials,
// valid from `from_seconds` to `to_seconds` relative to now.
inline void write_crl_file(const std::filesystem::path& path, X509* issuer, EVP_PKEY* key,
                           const std::vector<long>& revoked, long from_seconds, long to_seconds) {
  X509_CRL* crl = X509_CRL_new();
  X509_CRL_set_version(crl, 1);
  X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
  ASN1_TIME* last = X509_gmtime_adj(nullptr, from_seconds);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, to_seconds);
  X509_CRL_set1_lastUpdate(crl, last);
  X509_CRL_set1_nextUpdate(crl, next);
  for (long serial : revoked) {
    X509_REVOKED* r = X509_REVOKED_new();
    ASN1_INTEGER* number = ASN1_INTEGER_new();
    ASN1_INTEGER_set(number, serial);
    X509_REVOKED_set_serialNumber(r, number);
    X509_REVOKED_set_revocationDate(r, last);
    X509_CRL_add0_revoked(crl, r);
    ASN1_INTEGER_free(number);
  }
  X509_CRL_sort(crl);
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  const auto tmp = path.string() + ".new";
  FILE* f = std::fopen(tmp.c_str(), "w");
  const bool ok = f != nullptr && X509_CRL_sign(crl, key, EVP_sha256()) != 0 && PEM_write_X509_CRL(f, crl) == 1;
  if (f != nullptr) std::fclose(f);
  X509_CRL_free(crl);
  if (!ok) throw std::runtime_error("tls fixture: CRL " + path.string());
  std::filesystem::rename(tmp, path);
}

class TlsFixture {
 public:
  // Creates the cluster CA and a second, unrelated CA in `dir`.
  explicit TlsFixture(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    ca_ = make_ca("catga-test-ca", "ca");
    other_ca_ = make_ca("catga-other-ca", "other-ca");
  }

  const std::filesystem::path& ca_file() const { return ca_.cert_path; }
  const std::filesystem::path& other_ca_file() const { return other_ca_.cert_path; }

  // A certificate for `common_name` ("node-<id>" for members), valid from an
  // hour ago for a day, signed by the cluster CA (or the other one).
  TlsFiles issue(const std::string& common_name, bool by_other_ca = false, bool expired = false) {
    const Authority& ca = by_other_ca ? other_ca_ : ca_;
    const std::string stem = common_name + (by_other_ca ? "-other" : "") + (expired ? "-expired" : "") + "-" +
                             std::to_string(serial_);
    Key key(EVP_EC_gen("P-256"));
    const long from = expired ? -2 * kDay : -3600;
    const long to = expired ? -kDay : kDay;
    Cert cert(make_cert(common_name, key.get(), ca.cert.get(), ca.key.get(), from, to, false));
    TlsFiles f{ca_.cert_path, dir_ / (stem + ".pem"), dir_ / (stem + ".key"), serial_};
    write_cert(cert.get(), f.cert_file);
    write_key(key.get(), f.key_file);
    return f;
  }
  TlsFiles node(std::uint64_t id) { return issue("node-" + std::to_string(id)); }
  TlsFiles expired_node(std::uint64_t id) { return issue("node-" + std::to_string(id), false, true); }
  TlsFiles other_ca_node(std::uint64_t id) { return issue("node-" + std::to_string(id), true); }

  // Writes to `path` (atomically: a new file renamed over it) a CRL of the
  // cluster CA revoking the certificates with these serials, valid from an
  // hour ago for a day.
  void write_crl(const std::filesystem::path& path, const std::vector<long>& revoked) {
    write_crl_file(path, ca_.cert.get(), ca_.key.get(), revoked, -3600, kDay);
  }

 private:
  static constexpr long kDay = 24 * 3600;
  struct KeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  struct CertFree {
    void operator()(X509* c) const { X509_free(c); }
  };
  using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
  using Cert = std::unique_ptr<X509, CertFree>;
  struct Authority {
    Key key;
    Cert cert;
    std::filesystem::path cert_path;
  };

  Authority make_ca(const std::string& name, const std::string& stem) {
    Authority a;
    a.key.reset(EVP_EC_gen("P-256"));
    a.cert.reset(make_cert(name, a.key.get(), nullptr, a.key.get(), -3600, 30 * kDay, true));
    a.cert_path = dir_ / (stem + ".pem");
    write_cert(a.cert.get(), a.cert_path);
    return a;
  }

  static void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (ext == nullptr) throw std::runtime_error("tls fixture: extension");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  X509* make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, long from, long to,
                  bool ca) {
    if (key == nullptr) throw std::runtime_error("tls fixture: key generation");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(x), from);
    X509_gmtime_adj(X509_getm_notAfter(x), to);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : name);
    X509* signer = issuer != nullptr ? issuer : x;
    add_ext(x, signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(x, signer, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(x, signer, NID_subject_key_identifier, "hash");
    if (!ca) {
      add_ext(x, signer, NID_ext_key_usage, "serverAuth,clientAuth");
      add_ext(x, signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    }
    if (X509_sign(x, issuer_key, EVP_sha256()) == 0) {
      X509_free(x);
      throw std::runtime_error("tls fixture: signing");
    }
    return x;
  }

  static void write_cert(X509* cert, const std::filesystem::path& path) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr || PEM_write_X509(f, cert) != 1) throw std::runtime_error("tls fixture: write " + path.string());
    std::fclose(f);
  }
  static void write_key(EVP_PKEY* key, const std::filesystem::path& path) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr || PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      throw std::runtime_error("tls fixture: write " + path.string());
    }
    std::fclose(f);
  }

  std::filesystem::path dir_;
  long serial_ = 0;
  Authority ca_;
  Authority other_ca_;
};

}  // namespace testsupport
