#include "cluster/tls_stream.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "catga/cluster.hpp"
#include "cluster/peer_secrets.h"
#include "cluster/tls_context.h"
#include "core/log.hpp"

namespace catga::internal {

Result<std::shared_ptr<TlsCredentials>> TlsCredentials::load(const Files& f) {
  char err[320] = {0};
  const catga_tls_files files{f.ca_file.c_str(), f.cert_file.c_str(), f.key_file.c_str(), f.crl_file.c_str(),
                              f.label.c_str()};
  catga_tls_context* c = catga_tls_context_new(&files, err, sizeof err);
  if (c == nullptr) return Error{Code::invalid_argument, err};
  return std::shared_ptr<TlsCredentials>(new TlsCredentials(c));
}

TlsCredentials::~TlsCredentials() { catga_tls_context_free(c_); }

std::uint64_t TlsCredentials::node_id() const { return catga_tls_context_node_id(c_); }

asio::ssl::context TlsCredentials::context(const char* who) {
  char err[320] = {0};
  SSL_CTX* ctx = catga_tls_context_get(c_, err, sizeof err);
  if (err[0] != '\0') internal::log().warn("catga {}: TLS credentials not reloaded: {}", who, err);
  return asio::ssl::context(ctx);
}

namespace {
std::optional<asio::ssl::stream<asio::ip::tcp::socket>> make_tls(asio::ip::tcp::socket& socket,
                                                                 TlsCredentials* credentials) {
  if (credentials == nullptr) return std::nullopt;
  auto ctx = credentials->context("peer channel");
  return std::optional<asio::ssl::stream<asio::ip::tcp::socket>>(std::in_place, std::move(socket), ctx);
}
}  // namespace

TlsStream::TlsStream(asio::ip::tcp::socket socket, TlsCredentials* credentials)
    : plain_(socket.get_executor()), tls_(make_tls(socket, credentials)) {
  if (!tls_) plain_ = std::move(socket);
}

Result<std::uint64_t> TlsStream::peer_node_id() {
  char err[256] = {0};
  const std::uint64_t id = catga_tls_peer_node_id(tls_->native_handle(), err, sizeof err);
  if (id == 0) return Error{Code::permission_denied, err};
  return id;
}

std::string TlsStream::describe_failure(const asio::error_code& ec) {
  std::string why = ec.message();
  if (tls_) {
    const long verify = SSL_get_verify_result(tls_->native_handle());
    if (verify != X509_V_OK) why += std::string(": ") + X509_verify_cert_error_string(verify);
  }
  return why;
}

}  // namespace catga::internal

namespace catga {

std::vector<std::string> reload_cluster_tls() {
  std::vector<std::string> lines;
  auto add = [](void* data, const char* line) { static_cast<std::vector<std::string>*>(data)->emplace_back(line); };
  catga_tls_context_reload_all(add, &lines);
  catga_peer_secrets_reload_all(add, &lines);
  return lines;
}

}  // namespace catga
