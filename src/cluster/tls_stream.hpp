// TlsStream: a peer-channel connection that is plain TCP, or mutual TLS 1.3
// on TCP (asio::ssl), behind one AsyncReadStream/AsyncWriteStream, so the
// peer protocol's code is the same for both. TlsCredentials: the node's
// certificate files (tls_context.h) from C++, reloaded when they change.
//
// Threading: a TlsStream belongs to its connection's I/O thread, like the
// socket it wraps. TlsCredentials::context() may be called from any thread.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "catga/result.hpp"

struct catga_tls_context;
struct ssl_ctx_st;

namespace catga::internal {

class TlsCredentials {
 public:
  struct Files {
    std::string ca_file, cert_file, key_file;
    std::string crl_file;  // optional
    std::string label;     // who uses them, in reload reports
  };
  // Loads the PEM files; the error names the file and the reason.
  static Result<std::shared_ptr<TlsCredentials>> load(const Files& files);
  ~TlsCredentials();
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;

  // The current context, for one new connection (asio takes the reference).
  // A failed reload is logged once, with `who` ("peer channel") in front, and
  // the previous credentials stay in use.
  asio::ssl::context context(const char* who);
  // The node id the certificate names (tls_context.h).
  std::uint64_t node_id() const;

 private:
  explicit TlsCredentials(catga_tls_context* c) : c_(c) {}
  catga_tls_context* c_;
};

class TlsStream {
 public:
  using executor_type = asio::ip::tcp::socket::executor_type;

  // Plain TCP when `credentials` is null.
  TlsStream(asio::ip::tcp::socket socket, TlsCredentials* credentials);

  executor_type get_executor() { return tcp().get_executor(); }
  asio::ip::tcp::socket& tcp() { return tls_ ? tls_->next_layer() : plain_; }
  bool tls() const { return tls_.has_value(); }
  asio::ssl::stream<asio::ip::tcp::socket>& tls_stream() { return *tls_; }

  template <class Buffers, class Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) tls_->async_read_some(buffers, std::forward<Handler>(handler));
    else plain_.async_read_some(buffers, std::forward<Handler>(handler));
  }
  template <class Buffers, class Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) tls_->async_write_some(buffers, std::forward<Handler>(handler));
    else plain_.async_write_some(buffers, std::forward<Handler>(handler));
  }

  // After a successful TLS handshake: the node id the verified peer
  // certificate names, or the reason there is none.
  Result<std::uint64_t> peer_node_id();
  // Why the TLS handshake failed, one phrase (OpenSSL's reason, and the
  // certificate verification result when that failed).
  std::string describe_failure(const asio::error_code& ec);

 private:
  asio::ip::tcp::socket plain_;
  std::optional<asio::ssl::stream<asio::ip::tcp::socket>> tls_;
};

}  // namespace catga::internal
