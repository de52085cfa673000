#include "http/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/x509err.h>
#include <openssl/x509.h>

namespace catga::http::internal {
namespace {

std::string openssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> TlsContexts::load(const TlsOptions& options) {
  ERR_clear_error();
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  auto bad = [](const std::string& what) { return Error{Code::invalid_argument, what + ": " + openssl_reason()}; };
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // TLS 1.2: forward-secret AEAD suites only (TLS 1.3's are all of that kind).
  if (SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) return bad("TLS 1.2 cipher list");
  if (SSL_CTX_use_certificate_chain_file(native, options.cert_file.c_str()) != 1) {
    return bad("TlsOptions::cert_file " + options.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(native, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return Error{Code::invalid_argument, "TlsOptions::key_file " + options.key_file +
                                               " does not match the certificate in " + options.cert_file};
    }
    return bad("TlsOptions::key_file " + options.key_file);
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    return bad("TlsOptions::key_file " + options.key_file + " does not match " +
               options.cert_file);
  }
  if (X509* certificate = SSL_CTX_get0_certificate(native); X509_cmp_current_time(X509_get0_notAfter(certificate)) < 0) {
    return Error{Code::invalid_argument, "TlsOptions::cert_file " + options.cert_file + " has expired"};
  }
  if (options.client_certificates != ClientCertificates::none) {
    const char* ca = options.client_ca_file.c_str();
    if (SSL_CTX_load_verify_locations(native, ca, nullptr) != 1) return bad("TlsOptions::client_ca_file " + options.client_ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca);
    if (!names) return bad("TlsOptions::client_ca_file " + options.client_ca_file + " lists no CA");
    SSL_CTX_set_client_CA_list(native, names);
    if (!options.crl_file.empty()) {
      X509_STORE* store = SSL_CTX_get_cert_store(native);
      X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
      if (lookup == nullptr || X509_load_crl_file(lookup, options.crl_file.c_str(), X509_FILETYPE_PEM) <= 0) {
        return bad("TlsOptions::crl_file " + options.crl_file);
      }
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    int mode = SSL_VERIFY_PEER;
    if (options.client_certificates == ClientCertificates::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(native, mode, nullptr);
    SSL_CTX_set_verify_depth(native, 4);
  }
  static constexpr unsigned char kSessionContext[] = "catga-http";
  SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  return context;
}

Result<std::shared_ptr<TlsContexts>> TlsContexts::create(const TlsOptions& options) {
  auto loaded = load(options);
  if (!loaded) return loaded.error();
  std::shared_ptr<TlsContexts> contexts(new TlsContexts(options));
  contexts->base_ = *loaded;
  contexts->current_ = std::move(*loaded);
  return contexts;
}

void TlsContexts::prepare(SSL* ssl) const {
  std::shared_ptr<asio::ssl::context> current;
  {
    std::lock_guard lock(mutex_);
    current = current_;
  }
  // The SSL takes its own reference: a context replaced later lives on while
  // connections made from it do.
  if (current != base_) SSL_set_SSL_CTX(ssl, current->native_handle());
}

Result<void> TlsContexts::reload() {
  auto loaded = load(options_);
  if (!loaded) return loaded.error();
  std::lock_guard lock(mutex_);
  current_ = std::move(*loaded);
  return {};
}

std::vector<std::string> TlsContexts::files() const {
  std::vector<std::string> files{options_.cert_file, options_.key_file};
  if (options_.client_certificates != ClientCertificates::none) files.push_back(options_.client_ca_file);
  if (!options_.crl_file.empty()) files.push_back(options_.crl_file);
  return files;
}

std::optional<std::string> verified_peer_name(SSL* ssl) {
  X509* certificate = SSL_get0_peer_certificate(ssl);
  if (!certificate || SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  X509_NAME* subject = X509_get_subject_name(certificate);
  const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at < 0) return std::nullopt;
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
  if (length < 0) return std::nullopt;
  std::string name(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return name;
}

std::string handshake_failure(const asio::error_code& ec, SSL* ssl) {
  if (ec.category() != asio::error::get_ssl_category()) {
    if (ec == asio::error::eof || ec == asio::error::connection_reset) return "the client closed the connection";
    return ec.message();
  }
  const std::string reason = ec.message();
  switch (ERR_GET_REASON(static_cast<unsigned long>(ec.value()))) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      return "plaintext HTTP on the TLS port (" + reason + ")";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNEXPECTED_MESSAGE:
      return "not a TLS client hello: garbage or plaintext on the TLS port (" + reason + ")";
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return "the client presented no certificate and one is required (" + reason + ")";
    case SSL_R_CERTIFICATE_VERIFY_FAILED: {
      const long result = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
      return "the client certificate is not accepted: " + std::string(X509_verify_cert_error_string(result));
    }
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
      return "the client does not trust this server's certificate (" + reason + ")";
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
      return "the client offers no TLS version this server accepts, 1.2 or 1.3 (" + reason + ")";
    default:
      return reason;
  }
}

}  // namespace catga::http::internal
