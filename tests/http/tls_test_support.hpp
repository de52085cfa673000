// Test certificates and a small HTTPS client for the HTTPS tests.
//
// `TestPki` makes throwaway CAs and certificates with OpenSSL (P-256 keys)
// into a temporary directory, removed with it: a CA, a server certificate for
// 127.0.0.1, client certificates (valid, expired, from another CA), and
// revocation lists.
// `https_call` makes one request over TLS, bounded in time, and reports the
// status and body or why the handshake failed.
#pragma once

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/cluster.hpp"
#include "support/tls_fixture.hpp"

namespace catga::testing {

class TestPki {
 public:
  struct Issued {
    std::string certificate;  // PEM file paths
    std::string key;
    long serial = 0;  // the certificate's serial number (for a CRL)
  };

  TestPki() = default;
  const std::filesystem::path& dir() const { return dir_.path(); }

  // A self-signed CA named `name` (its files: <name>.crt, <name>.key).
  Issued ca(const std::string& name) {
    Key key;
    X509* cert = make(name, key, nullptr, nullptr, 0, 3650, true);
    return save(name, cert, key);
  }
  // A certificate for `common_name` signed by the CA `ca` (an `ca()` result);
  // valid from `from_days` to `to_days` relative to now; with a SAN of
  // 127.0.0.1 and localhost for servers.
  Issued issue(const Issued& ca, const std::string& file, const std::string& common_name, bool server,
               long from_days = -1, long to_days = 365) {
    Key ca_key = Key::read(ca.key);
    X509* ca_cert = read_certificate(ca.certificate);
    Key key;
    X509* cert = make(common_name, key, ca_cert, &ca_key, from_days, to_days, false, server);
    X509_free(ca_cert);
    return save(file, cert, key);
  }
  // Writes <file>.crl (replacing it atomically: a new file renamed over it),
  // a CRL of `ca` revoking these serials, valid from a day ago for a
  // year; its path.
  std::string crl(const Issued& ca, const std::string& file, const std::vector<long>& revoked) {
    Key ca_key = Key::read(ca.key);
    std::unique_ptr<X509, decltype(&X509_free)> ca_cert(read_certificate(ca.certificate), X509_free);
    const std::string path = (dir() / (file + ".crl")).string();
    testsupport::write_crl_file(path, ca_cert.get(), ca_key.pkey, revoked, -86400, 365L * 86400);
    return path;
  }

 private:
  struct Key {
    Key() : pkey(EVP_EC_gen("P-256")) {
      if (!pkey) throw std::runtime_error("EVP_EC_gen failed");
    }
    explicit Key(EVP_PKEY* p) : pkey(p) {}
    static Key read(const std::string& file) {
      FILE* f = std::fopen(file.c_str(), "r");
      EVP_PKEY* p = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
      std::fclose(f);
      return Key(p);
    }
    Key(Key&& other) noexcept : pkey(std::exchange(other.pkey, nullptr)) {}
    ~Key() { EVP_PKEY_free(pkey); }
    EVP_PKEY* pkey;
  };

  static X509* read_certificate(const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "r");
    X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    return cert;
  }

  static void extend(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }

  X509* make(const std::string& common_name, Key& key, X509* issuer, Key* issuer_key, long from_days, long to_days,
             bool is_ca, bool server = false) {
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(cert), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(cert), to_days * 86400);
    X509_set_pubkey(cert, key.pkey);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                               -1, -1, 0);
    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
    if (is_ca) {
      extend(cert, issuer, NID_basic_constraints, "critical,CA:TRUE");
      extend(cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      extend(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
      extend(cert, issuer, NID_ext_key_usage, server ? "serverAuth" : "clientAuth");
      if (server) extend(cert, issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    }
    X509_sign(cert, issuer_key ? issuer_key->pkey : key.pkey, EVP_sha256());
    return cert;
  }

  Issued save(const std::string& file, X509* cert, Key& key) {
    Issued out{(dir() / (file + ".crt")).string(), (dir() / (file + ".key")).string(),
               ASN1_INTEGER_get(X509_get_serialNumber(cert))};
    FILE* c = std::fopen(out.certificate.c_str(), "w");
    PEM_write_X509(c, cert);
    std::fclose(c);
    FILE* k = std::fopen(out.key.c_str(), "w");
    PEM_write_PrivateKey(k, key.pkey, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(k);
    X509_free(cert);
    return out;
  }

  testsupport::TempDir dir_;
  long serial_ = 0;
};

// Sends this process's standard error (the library's log) to a file while it
// lives, so a test can wait for a log line and count them.
class StderrCapture {
 public:
  explicit StderrCapture(const std::filesystem::path& file) : file_(file) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~StderrCapture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
  }
  std::string text() const {
    std::ifstream in(file_);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }
  std::size_t lines() const {
    const std::string t = text();
    return static_cast<std::size_t>(std::count(t.begin(), t.end(), '\n'));
  }
  // Waits (bounded) until at least `n` lines were logged; the log.
  std::string wait_lines(std::size_t n) const {
    testsupport::wait_for([&] { return lines() >= n; });
    return text();
  }

 private:
  std::filesystem::path file_;
  int saved_ = -1;
};

struct HttpsCall {
  std::string method = "GET";
  std::string path = "/health";
  std::string body;
  std::string token;
  std::string ca_file;          // trusted for the server (empty: no verification)
  TestPki::Issued client;       // presented when set
};

struct HttpsOutcome {
  std::string handshake_error;  // empty when the handshake succeeded
  std::string server_name;      // the server certificate's subject CN
  std::string protocol;         // "TLSv1.3", ...
  int status = 0;               // 0: no response
  std::string body;
};

// One request over a new TLS connection; at most `timeout` in all.
inline HttpsOutcome https_call(std::uint16_t port, const HttpsCall& call,
                               std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  asio::io_context io;
  asio::ssl::context context(asio::ssl::context::tls_client);
  if (!call.ca_file.empty()) {
    context.load_verify_file(call.ca_file);
    context.set_verify_mode(asio::ssl::verify_peer);
  }
  if (!call.client.certificate.empty()) {
    context.use_certificate_chain_file(call.client.certificate);
    context.use_private_key_file(call.client.key, asio::ssl::context::pem);
  }
  asio::ssl::stream<asio::ip::tcp::socket> stream(io, context);
  HttpsOutcome out;
  std::string request = call.method + " " + call.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!call.token.empty()) request += "Authorization: Bearer " + call.token + "\r\n";
  if (!call.body.empty()) request += "Content-Type: application/json\r\n";
  request += "Content-Length: " + std::to_string(call.body.size()) + "\r\n\r\n" + call.body;
  std::string raw;
  std::array<char, 8192> chunk{};
  std::function<void()> read_more = [&] {
    stream.async_read_some(asio::buffer(chunk), [&](asio::error_code ec, std::size_t n) {
      raw.append(chunk.data(), n);
      if (!ec) read_more();
    });
  };
  stream.lowest_layer().async_connect({asio::ip::make_address("127.0.0.1"), port}, [&](asio::error_code ec) {
    if (ec) {
      out.handshake_error = "connect: " + ec.message();
      return;
    }
    stream.async_handshake(asio::ssl::stream_base::client, [&](asio::error_code ec) {
      if (ec) {
        out.handshake_error = ec.message();
        return;
      }
      out.protocol = SSL_get_version(stream.native_handle());
      if (X509* peer = SSL_get0_peer_certificate(stream.native_handle())) {
        char name[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof name);
        out.server_name = name;
      }
      asio::async_write(stream, asio::buffer(request), [&](asio::error_code ec, std::size_t) {
        if (!ec) read_more();
      });
    });
  });
  io.run_for(timeout);
  if (!io.stopped()) out.handshake_error = out.handshake_error.empty() ? "timed out" : out.handshake_error;
  const std::size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) == 0 && head_end != std::string::npos) {
    out.status = std::stoi(raw.substr(9, 3));
    out.body = raw.substr(head_end + 4);
  }
  return out;
}

}  // namespace catga::testing
