// The HTTPS server's TLS contexts (OpenSSL through asio::ssl; no RESTinio).
// RESTinio creates every connection's SSL from one base context; before the
// handshake `prepare` points the connection at the newest loaded context, so a
// reload serves new connections with new files while open ones keep theirs.
#pragma once

#include <asio/ssl.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catga/http.hpp"

namespace catga::http::internal {

class TlsContexts {
 public:
  // Loads and checks the files (the error names the file and OpenSSL's reason).
  static Result<std::shared_ptr<TlsContexts>> create(const TlsOptions& options);

  // The context RESTinio creates its sockets from.
  const std::shared_ptr<asio::ssl::context>& base() const noexcept { return base_; }
  // Before a connection's handshake: use the newest certificates. Any thread.
  void prepare(SSL* ssl) const;
  // Loads the files again; on an error the current context stays.
  Result<void> reload();
  std::vector<std::string> files() const;
  const TlsOptions& options() const noexcept { return options_; }

 private:
  explicit TlsContexts(TlsOptions options) : options_(std::move(options)) {}
  static Result<std::shared_ptr<asio::ssl::context>> load(const TlsOptions& options);

  TlsOptions options_;
  std::shared_ptr<asio::ssl::context> base_;
  mutable std::mutex mutex_;
  std::shared_ptr<asio::ssl::context> current_;
};

// The subject common name of the peer's certificate when it verified.
std::optional<std::string> verified_peer_name(SSL* ssl);

// Why a handshake failed, in words an operator can act on.
std::string handshake_failure(const asio::error_code& ec, SSL* ssl);

}  // namespace catga::http::internal
