#include "cluster/peer_channel.hpp"

#include "catga/cluster.hpp"
#include "cluster/peer_secrets.h"
#include "cluster/raft_auth.h"
#include "cluster/tls_stream.hpp"
#include "core/log.hpp"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <string_view>
#include <unordered_map>

namespace catga::internal {
namespace {

using asio::ip::tcp;

struct HostPort {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without its brackets
  std::string port;
};

// "HOST:PORT" or "[IPV6]:PORT".
Result<HostPort> split_address(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Error{Code::invalid_argument, "peer address '" + address + "' is not HOST:PORT"};
  }
  HostPort hp{address.substr(0, colon), address.substr(colon + 1)};
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']') hp.host = hp.host.substr(1, hp.host.size() - 2);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(hp.port.data(), hp.port.data() + hp.port.size(), port);
  if (hp.host.empty() || hp.port.empty() || ec != std::errc() || end != hp.port.data() + hp.port.size() || port > 65535) {
    return Error{Code::invalid_argument, "peer address '" + address + "' is not HOST:PORT with a port 0..65535"};
  }
  return hp;
}

// The address a listener binds: the name resolved now, its first IPv4
// address preferred (the one the Raft port binds too).
Result<tcp::endpoint> resolve_listen_endpoint(asio::io_context& io, const std::string& address) {
  auto hp = split_address(address);
  if (!hp) return hp.error();
  tcp::resolver resolver(io);
  asio::error_code ec;
  auto results = resolver.resolve(hp->host, hp->port, tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return Error{Code::unavailable, "peer channel cannot resolve " + address + ": " + (ec ? ec.message() : "no address")};
  }
  for (const auto& entry : results) {
    if (entry.endpoint().address().is_v4()) return entry.endpoint();
  }
  return results.begin()->endpoint();
}

// TCP_NODELAY (small frames must not wait for Nagle) and keep-alive (a peer
// that vanished without a reset is noticed even while nothing is awaited).
void tune_socket(tcp::socket& socket, const PeerChannel::Options& options) {
  asio::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  socket.set_option(asio::socket_base::keep_alive(true), ec);
  if (options.keepalive_idle.count() <= 0) return;
  const int fd = socket.native_handle();
  const int idle = static_cast<int>(std::max<std::int64_t>(1, (options.keepalive_idle.count() + 999) / 1000));
  const int interval = std::max(1, idle / 3);
  const int probes = 3;
  const unsigned user_timeout_ms = static_cast<unsigned>(idle + interval * probes) * 1000u;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

// One line per refused connection, at most one a second (the next line counts
// the ones left out): a scan or a flood cannot fill the log. I/O thread only.
class RefusalLog {
 public:
  template <class... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) {
    const auto now = std::chrono::steady_clock::now();
    if (logged_ && now - last_ < std::chrono::seconds(1)) {
      ++left_out_;
      return;
    }
    std::string line = fmt::format(format, std::forward<Args>(args)...);
    if (left_out_ > 0) line += fmt::format(" ({} more such lines left out in the last second)", left_out_);
    internal::log().warn("{}", line);
    logged_ = true;
    last_ = now;
    left_out_ = 0;
  }

 private:
  bool logged_ = false;
  std::chrono::steady_clock::time_point last_{};
  unsigned left_out_ = 0;
};

// The challenge-response of src/cluster/raft_auth.h on the "peer" channel.
std::string fresh_nonce() {
  std::string nonce(peer::kNonceBytes, '\0');
  if (catga_auth_random(reinterpret_cast<std::uint8_t*>(nonce.data()), nonce.size()) != 0) return {};
  return nonce;
}

// The secrets a connection runs with, taken once at its start (a reload
// never changes them mid-handshake): the first proves this node, every one
// is accepted; none: TLS alone.
struct SecretSetRelease {
  void operator()(const catga_secret_set* set) const { catga_secret_set_release(set); }
};
using SecretSet = std::unique_ptr<const catga_secret_set, SecretSetRelease>;
struct PeerSecretsFree {
  void operator()(catga_peer_secrets* s) const { catga_peer_secrets_free(s); }
};

std::string_view secret_at(const catga_secret_set& set, unsigned i) {
  return {reinterpret_cast<const char*>(set.data[i]), set.len[i]};
}

// Empty when OpenSSL could not compute it (the handshake then fails).
std::string peer_mac(const PeerChannel::Options& o, std::string_view secret, char direction,
                     const std::string& nonce_dialler, const std::string& nonce_listener, std::uint64_t dialler_id,
                     std::uint64_t listener_id) {
  std::string mac(peer::kMacBytes, '\0');
  if (nonce_dialler.size() != peer::kNonceBytes || nonce_listener.size() != peer::kNonceBytes ||
      catga_auth_mac(secret.data(), secret.size(), "peer", direction, o.cluster_id.c_str(),
                     reinterpret_cast<const std::uint8_t*>(nonce_dialler.data()),
                     reinterpret_cast<const std::uint8_t*>(nonce_listener.data()), dialler_id, listener_id,
                     reinterpret_cast<std::uint8_t*>(mac.data())) != 0) {
    return {};
  }
  return mac;
}

bool same_mac(const std::string& a, const std::string& b) {
  return a.size() == peer::kMacBytes && b.size() == peer::kMacBytes &&
         catga_auth_mac_equal(reinterpret_cast<const std::uint8_t*>(a.data()),
                              reinterpret_cast<const std::uint8_t*>(b.data()));
}

// The secret of `set` (this node's own, or one of those it also accepts)
// under which `mac` is the peer's MAC for `direction`; nullopt when none
// makes it. Every secret is tried, whichever matches.
std::optional<std::string_view> proven_secret(const PeerChannel::Options& o, const catga_secret_set& set,
                                              const std::string& mac, char direction, const std::string& nonce_dialler,
                                              const std::string& nonce_listener, std::uint64_t dialler_id,
                                              std::uint64_t listener_id) {
  std::optional<std::string_view> found;
  for (unsigned i = 0; i < set.n; ++i) {
    const std::string_view secret = secret_at(set, i);
    if (same_mac(mac, peer_mac(o, secret, direction, nonce_dialler, nonce_listener, dialler_id, listener_id)) &&
        !found) {
      found = secret;
    }
  }
  return found;
}

// Reads frames from a socket: header, then body, then `on_frame(body)`.
template <class Self>
void read_frame(std::shared_ptr<Self> self, std::size_t max_body) {
  self->header_.resize(peer::kHeaderBytes);
  asio::async_read(self->socket_, asio::buffer(self->header_), [self, max_body](asio::error_code ec, std::size_t) {
    if (ec) return self->fail(ec.message());
    // A client's silence ends with a frame's header, not its body: the body's
    // completion may queue behind a watchdog that expired meanwhile.
    if constexpr (requires { self->heard(); }) self->heard();
    auto len = peer::body_length(self->header_, max_body);
    if (!len) return self->fail(len.error().message());
    self->body_.resize(*len);
    asio::async_read(self->socket_, asio::buffer(self->body_), [self, max_body](asio::error_code ec2, std::size_t) {
      if (ec2) return self->fail(ec2.message());
      if (self->on_frame(self->body_)) read_frame(self, max_body);
    });
  });
}

// ---------------------------------------------------------------- server side

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(tcp::socket socket, TlsCredentials* tls, catga_peer_secrets* secrets,
                   const PeerChannel::Options& options, const PeerChannel::Handler& handler, RefusalLog& refusals)
      : socket_(std::move(socket), tls), options_(options), handler_(handler), refusals_(refusals),
        handshake_timer_(socket_.get_executor()), secrets_(catga_peer_secrets_acquire(secrets)) {
    asio::error_code ec;
    tune_socket(socket_.tcp(), options_);
    remote_ = socket_.tcp().remote_endpoint(ec).address().to_string();
  }

  // Reads the hello; a connection that has not been welcomed within
  // options_.handshake_timeout is closed.
  void start() {
    auto self = shared_from_this();
    handshake_timer_.expires_after(options_.handshake_timeout);
    handshake_timer_.async_wait([self](asio::error_code ec) {
      if (ec || self->greeted_ || self->closed_) return;
      self->refusals_.warn("catga peer channel: refused a connection from {}: handshake not completed within {} ms",
                           self->remote_, self->options_.handshake_timeout.count());
      self->close();
    });
    if (!socket_.tls()) return read_frame(self, kMaxHandshakeFrame);
    socket_.tls_stream().async_handshake(asio::ssl::stream_base::server, [self](asio::error_code ec) {
      if (self->closed_) return;
      if (ec) {
        self->refusals_.warn("catga peer channel: refused a connection from {}: TLS handshake failed: {}",
                             self->remote_, self->socket_.describe_failure(ec));
        return self->close();
      }
      auto id = self->socket_.peer_node_id();
      if (!id) {
        self->refusals_.warn("catga peer channel: refused a connection from {}: {}", self->remote_, id.error().message());
        return self->close();
      }
      self->tls_peer_id_ = *id;
      read_frame(self, kMaxHandshakeFrame);
    });
  }

  // True to keep reading.
  bool on_frame(const std::string& body) {
    if (!greeted_) return on_handshake_frame(body);
    auto message = peer::decode_message(body, options_.max_records_per_frame);
    if (!message) {
      internal::log().warn("catga peer channel: closing the connection from {}: {}", remote_, message.error().message());
      close();
      return false;
    }
    switch (message->type) {
      case peer::Type::forward:
        handle_forward(std::move(*message));
        return true;
      case peer::Type::read:
        handle_read(message->id);
        return true;
      case peer::Type::member:
        if (!handler_.member_state) break;
        handle_member(message->id, message->member.node_id);
        return true;
      case peer::Type::build:
        if (!handler_.build) break;
        handle_build(message->id);
        return true;
      default:
        break;
    }
    internal::log().warn("catga peer channel: closing the connection from {}: unexpected message type", remote_);
    close();
    return false;
  }

  // The hello, then (with a secret) the proof. True to keep reading.
  bool on_handshake_frame(const std::string& body) {
    std::string reason;
    if (!hello_) {
      auto hello = peer::decode_hello(body);
      if (!hello) reason = hello.error().message();
      else if (hello->version != peer::kVersion) reason = "protocol version " + std::to_string(hello->version) + " is not supported (this node speaks " + std::to_string(peer::kVersion) + ")";
      else if (hello->cluster_id != options_.cluster_id) reason = "cluster id '" + hello->cluster_id + "' does not match";
      else if (secrets_->n > 0 && hello->nonce.empty()) reason = "this cluster requires the peer secret";
      else if (socket_.tls() && hello->node_id != tls_peer_id_) {
        reason = "it claims node " + std::to_string(hello->node_id) + " but its TLS certificate is for node " +
                 std::to_string(tls_peer_id_);
      }
      if (!reason.empty()) return refuse(reason);
      hello_ = std::move(*hello);
      if (secrets_->n == 0) return welcome();
      nonce_ = fresh_nonce();
      std::string mac = peer_mac(options_, secret_at(*secrets_, 0), 'L', hello_->nonce, nonce_, hello_->node_id,
                                 options_.node_id);
      if (nonce_.empty() || mac.empty()) return refuse("HMAC-SHA256 unavailable (OpenSSL)");
      std::string out;
      peer::append_challenge(out, {nonce_, std::move(mac), options_.node_id});
      send(std::move(out));
      return true;
    }
    auto proof = peer::decode_proof(body);
    if (!proof) return refuse(proof.error().message());
    if (!proven_secret(options_, *secrets_, *proof, 'D', hello_->nonce, nonce_, hello_->node_id, options_.node_id)) {
      return refuse("wrong peer secret");
    }
    return welcome();
  }

  bool welcome() {
    greeted_ = true;
    handshake_timer_.cancel();
    std::string out;
    peer::append_welcome(out, {true, peer::kVersion, options_.node_id, {}});
    send(std::move(out));
    read_frame(shared_from_this(), options_.max_frame_bytes);
    return false;  // reading again with the full frame limit
  }

  bool refuse(const std::string& reason) {
    refusals_.warn("catga peer channel: refused a connection from {}: {}", remote_, reason);
    std::string out;
    peer::append_welcome(out, {false, 0, 0, reason});
    send(std::move(out), /*close_after=*/true);
    return false;
  }

  void fail(const std::string& why) {
    if (!closed_ && why != "End of file") internal::log().debug("catga peer channel: connection from {} ended: {}", remote_, why);
    close();
  }

 private:
  friend void read_frame<ServerConnection>(std::shared_ptr<ServerConnection>, std::size_t);

  struct Batch {
    std::uint64_t id;
    std::vector<peer::Outcome> outcomes;
    std::size_t remaining;
    std::mutex mu;
  };

  void handle_forward(peer::Message message) {
    auto batch = std::make_shared<Batch>();
    batch->id = message.id;
    batch->outcomes.resize(message.records.size());
    batch->remaining = message.records.size();
    auto self = shared_from_this();
    handler_.forward(std::move(message.records), [self, batch](std::size_t i, peer::Outcome outcome) {
      bool last;
      {
        std::lock_guard lock(batch->mu);
        batch->outcomes[i] = std::move(outcome);
        last = --batch->remaining == 0;
      }
      if (!last) return;
      asio::post(self->socket_.get_executor(), [self, batch] {
        std::string out;
        peer::Message reply;
        reply.type = peer::Type::forwarded;
        reply.id = batch->id;
        reply.outcomes = std::move(batch->outcomes);
        peer::append_message(out, reply);
        self->send(std::move(out));
      });
    });
  }

  void handle_member(std::uint64_t id, std::uint64_t node_id) {
    peer::Message reply;
    reply.type = peer::Type::member_state;
    reply.id = id;
    reply.member = handler_.member_state(node_id);
    std::string out;
    peer::append_message(out, reply);
    send(std::move(out));
  }

  void handle_build(std::uint64_t id) {
    peer::Message reply;
    reply.type = peer::Type::build_info;
    reply.id = id;
    reply.build = handler_.build();
    reply.build.node_id = options_.node_id;
    std::string out;
    peer::append_message(out, reply);
    send(std::move(out));
  }

  void handle_read(std::uint64_t id) {
    auto self = shared_from_this();
    handler_.read_index([self, id](Result<std::uint64_t> index) {
      asio::post(self->socket_.get_executor(), [self, id, index = std::move(index)] {
        peer::Message reply;
        reply.type = peer::Type::read_index;
        reply.id = id;
        if (index) {
          reply.index = *index;
        } else {
          reply.code = index.error().code();
          reply.message = index.error().message();
        }
        std::string out;
        peer::append_message(out, reply);
        self->send(std::move(out));
      });
    });
  }

  // I/O thread.
  void send(std::string frame, bool close_after = false) {
    if (closed_) return;
    queue_.push_back(std::move(frame));
    close_after_ = close_after_ || close_after;
    if (!writing_) write_next();
  }
  void write_next() {
    if (queue_.empty()) {
      writing_ = false;
      if (close_after_) close();
      return;
    }
    writing_ = true;
    // Everything queued goes out in one write.
    out_.clear();
    for (auto& f : queue_) out_ += f;
    queue_.clear();
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_), [self](asio::error_code ec, std::size_t) {
      if (ec) return self->fail(ec.message());
      self->write_next();
    });
  }
  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    handshake_timer_.cancel();
    socket_.tcp().shutdown(tcp::socket::shutdown_both, ec);
    socket_.tcp().close(ec);
  }

 public:
  TlsStream socket_;
  std::string header_, body_;

 private:
  // Handshake frames are small: an unauthenticated client cannot make the
  // node allocate max_frame_bytes.
  static constexpr std::size_t kMaxHandshakeFrame = 8192;

  const PeerChannel::Options& options_;
  const PeerChannel::Handler& handler_;
  RefusalLog& refusals_;
  asio::steady_timer handshake_timer_;
  SecretSet secrets_;
  std::optional<peer::Hello> hello_;
  std::string nonce_;
  std::string remote_;
  std::uint64_t tls_peer_id_ = 0;
  bool greeted_ = false;
  bool closed_ = false;
  bool writing_ = false;
  bool close_after_ = false;
  std::deque<std::string> queue_;
  std::string out_;
};

// ---------------------------------------------------------------- client side

class ClientConnection : public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(asio::io_context& io, std::string address, TlsCredentials* tls, catga_peer_secrets* secrets,
                   const PeerChannel::Options& options, RefusalLog& refusals,
                   std::function<void(const std::string&)> on_dead)
      : socket_(tcp::socket(io), tls), resolver_(io), watchdog_(io), answer_timeout_(options.answer_timeout),
        address_(std::move(address)),
        secret_source_(secrets), options_(options), refusals_(refusals),
        on_dead_(std::move(on_dead)) {}

  bool dead() const { return state_ == State::dead; }

  void forward(std::string record, PeerChannel::OutcomeDone done) {
    watch();
    queued_records_.push_back(std::move(record));
    queued_done_.push_back(std::move(done));
    if (state_ == State::idle) connect();
    else if (state_ == State::ready && !writing_) flush_soon();
  }
  void read_index(PeerChannel::IndexDone done) {
    watch();
    queued_reads_.push_back(std::move(done));
    if (state_ == State::idle) connect();
    else if (state_ == State::ready && !writing_) flush();
  }
  void ask_member(std::uint64_t node_id, std::chrono::milliseconds patience, PeerChannel::MemberDone done) {
    if (answer_timeout_.count() > 0) answer_timeout_ = std::max(answer_timeout_, patience);
    watch();
    queued_questions_.emplace_back(node_id, std::move(done));
    if (state_ == State::idle) connect();
    else if (state_ == State::ready && !writing_) flush();
  }
  void ask_build(PeerChannel::BuildDone done) {
    watch();
    queued_builds_.push_back(std::move(done));
    if (state_ == State::idle) connect();
    else if (state_ == State::ready && !writing_) flush();
  }

  void heard() { last_heard_ = Clock::now(); }

  bool on_frame(const std::string& body) {
    heard();
    if (state_ == State::greeting) return on_greeting(body);
    auto message = peer::decode_message(body, options_.max_records_per_frame);
    if (!message) return fail(message.error().message()), false;
    if (message->type == peer::Type::forwarded) {
      auto it = forwards_.find(message->id);
      if (it == forwards_.end()) return true;
      auto dones = std::move(it->second);
      forwards_.erase(it);
      for (std::size_t i = 0; i < dones.size(); ++i) {
        if (i < message->outcomes.size()) dones[i](std::move(message->outcomes[i]));
        else dones[i](peer::Outcome{Code::internal, "the leader answered fewer records than it was sent", 0});
      }
    } else if (message->type == peer::Type::read_index) {
      auto it = reads_.find(message->id);
      if (it == reads_.end()) return true;
      auto done = std::move(it->second);
      reads_.erase(it);
      if (message->code == Code::ok) done(message->index);
      else done(Error{message->code, message->message});
    } else if (message->type == peer::Type::member_state) {
      auto it = questions_.find(message->id);
      if (it == questions_.end()) return true;
      auto done = std::move(it->second);
      questions_.erase(it);
      done(std::move(message->member));
    } else if (message->type == peer::Type::build_info) {
      auto it = builds_.find(message->id);
      if (it == builds_.end()) return true;
      auto done = std::move(it->second);
      builds_.erase(it);
      done(message->build);
    }
    return true;
  }

  // The challenge (with a secret), then the welcome. True to keep reading.
  bool on_greeting(const std::string& body) {
    auto welcome = peer::decode_welcome(body);
    if (welcome && !welcome->accepted) {
      handshake_refused_ = true;
      return fail("refused: " + welcome->reason), false;
    }
    if (socket_.tls()) {
      std::optional<std::uint64_t> claimed;
      if (welcome) claimed = welcome->node_id;
      else if (auto challenge = peer::decode_challenge(body)) claimed = challenge->node_id;
      if (claimed && *claimed != tls_peer_id_) {
        return refused("it claims node " + std::to_string(*claimed) + " but its TLS certificate is for node " +
                       std::to_string(tls_peer_id_));
      }
    }
    if (secrets_->n > 0 && !challenged_) {
      auto challenge = peer::decode_challenge(body);
      if (!challenge) {
        return refused(welcome ? "it welcomed this node without proving the cluster secret (does it run without one?)"
                               : challenge.error().message());
      }
      const auto secret = proven_secret(options_, *secrets_, challenge->mac, 'L', nonce_, challenge->nonce,
                                        options_.node_id, challenge->node_id);
      if (!secret) return refused("it does not hold the cluster secret (or has another cluster id)");
      challenged_ = true;
      std::string proof;
      peer::append_proof(
          proof, peer_mac(options_, *secret, 'D', nonce_, challenge->nonce, options_.node_id, challenge->node_id));
      write(std::move(proof));
      return true;
    }
    if (!welcome) {
      if (peer::decode_challenge(body)) return refused("it requires the cluster secret and this node has none");
      return fail(welcome.error().message()), false;
    }
    state_ = State::ready;
    flush();
    return true;
  }

  bool refused(const std::string& why) {
    refusals_.warn("catga peer channel: connection to {} refused: {}", address_, why);
    handshake_refused_ = true;
    fail("authentication failed: " + why);
    return false;
  }

  void fail(const std::string& why) {
    if (state_ == State::dead) return;
    // Connected, but the node there did not complete this node's handshake
    // (refused it, failed to prove itself, a TLS alert, went silent).
    const bool handshake_failed = handshake_refused_ || state_ == State::greeting;
    state_ = State::dead;
    asio::error_code ec;
    resolver_.cancel();
    socket_.tcp().close(ec);
    watchdog_.cancel();
    const std::string prefix = "peer " + address_ + ": ";
    // Written and unanswered: the leader may have applied them.
    for (auto& [id, dones] : forwards_)
      for (auto& d : dones) d(peer::Outcome{Code::deadline_exceeded, prefix + why + "; outcome unknown", 0});
    for (auto& [id, d] : reads_) d(Error{Code::unavailable, prefix + why});
    // Never written: nothing happened.
    for (auto& d : queued_done_) d(peer::Outcome{Code::unavailable, prefix + why, 0});
    for (auto& d : queued_reads_) d(Error{Code::unavailable, prefix + why});
    for (auto& [id, d] : questions_) d(Error{Code::unavailable, prefix + why});
    for (auto& [node, d] : queued_questions_) d(Error{Code::unavailable, prefix + why});
    // Asked and not answered: a build that does not know the question.
    for (auto& [id, d] : builds_) {
      d(Error{Code::unimplemented, prefix + why + " instead of answering what build it runs"});
    }
    for (auto& d : queued_builds_) d(Error{handshake_failed ? Code::unauthenticated : Code::unavailable, prefix + why});
    builds_.clear();
    queued_builds_.clear();
    questions_.clear();
    queued_questions_.clear();
    forwards_.clear();
    reads_.clear();
    queued_done_.clear();
    queued_records_.clear();
    queued_reads_.clear();
    on_dead_(address_);
  }

  TlsStream socket_;
  std::string header_, body_;

 private:
  enum class State { idle, connecting, greeting, ready, dead };
  tcp::resolver resolver_;
  using Clock = std::chrono::steady_clock;

  // Something is owed by the peer: the connection or handshake, an answer to
  // a written request, or a write of queued ones (which waits on the peer
  // reading).
  bool awaiting_peer() const {
    return state_ == State::connecting || state_ == State::greeting || !forwards_.empty() || !reads_.empty() ||
           !queued_records_.empty() || !queued_reads_.empty() || !questions_.empty() || !queued_questions_.empty() ||
           !builds_.empty() || !queued_builds_.empty();
  }

  // Per-attempt timeout: called as a request is queued. The silence is
  // counted from the last frame received, or from now if nothing was owed.
  void watch() {
    if (answer_timeout_.count() <= 0 || state_ == State::dead) return;
    if (!awaiting_peer()) last_heard_ = Clock::now();
    if (!watchdog_armed_) arm_watchdog(answer_timeout_);
  }
  void arm_watchdog(Clock::duration after) {
    watchdog_armed_ = true;
    watchdog_.expires_after(after);
    watchdog_.async_wait([self = shared_from_this()](asio::error_code ec) {
      self->watchdog_armed_ = false;
      if (ec || self->state_ == State::dead || !self->awaiting_peer()) return;
      // Bytes waiting unread are an answer this process was too busy to
      // read (descheduled, or its I/O thread held up): not silence.
      asio::error_code unread;
      if (self->socket_.tcp().available(unread) > 0 && !unread) self->heard();
      const auto silent = Clock::now() - self->last_heard_;
      if (silent < self->answer_timeout_) return self->arm_watchdog(self->answer_timeout_ - silent);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(silent).count();
      internal::log().warn("catga peer channel: peer {} sent nothing for {} ms while requests waited; closing the connection",
                           self->address_, ms);
      self->fail("no answer for " + std::to_string(ms) + " ms");
    });
  }

  // Resolves the peer's name on every connection (a member whose address
  // changed under the same name is found again once the old connection
  // failed), then tries each address in turn.
  void connect() {
    auto hp = split_address(address_);
    if (!hp) return fail(hp.error().message());
    state_ = State::connecting;
    auto self = shared_from_this();
    resolver_.async_resolve(hp->host, hp->port, tcp::resolver::numeric_service,
                            [self](asio::error_code ec, const tcp::resolver::results_type& results) {
                              if (self->state_ == State::dead) return;
                              if (ec) return self->fail("cannot resolve: " + ec.message());
                              self->connect_to(results);
                            });
  }

  void connect_to(const tcp::resolver::results_type& results) {
    auto self = shared_from_this();
    asio::async_connect(socket_.tcp(), results, [self](asio::error_code ec, const tcp::endpoint&) {
      if (ec) return self->fail("cannot connect: " + ec.message());
      tune_socket(self->socket_.tcp(), self->options_);
      self->state_ = State::greeting;
      if (!self->socket_.tls()) return self->greet();
      self->socket_.tls_stream().async_handshake(asio::ssl::stream_base::client, [self](asio::error_code ec2) {
        if (self->state_ == State::dead) return;
        if (ec2) return void(self->refused("TLS handshake failed: " + self->socket_.describe_failure(ec2)));
        auto id = self->socket_.peer_node_id();
        if (!id) return void(self->refused(id.error().message()));
        self->tls_peer_id_ = *id;
        self->greet();
      });
    });
  }

  // The hello (inside TLS when on), then the greeting frames.
  void greet() {
    challenged_ = false;
    secrets_.reset(catga_peer_secrets_acquire(secret_source_));  // the newest, for this connection
    nonce_ = secrets_->n == 0 ? std::string() : fresh_nonce();
    if (secrets_->n > 0 && nonce_.empty()) return fail("no random nonce (OpenSSL)");
    std::string hello;
    peer::append_hello(hello, {peer::kVersion, options_.cluster_id, nonce_, options_.node_id});
    write(std::move(hello));
    read_frame(shared_from_this(), options_.max_frame_bytes);
  }

  // Flushes after the handlers already queued on the I/O thread ran: records
  // forwarded by one burst of completions (callers answered together send
  // their next commands together) travel in one frame and one log entry.
  void flush_soon() {
    if (flush_posted_) return;
    flush_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->flush_posted_ = false;
      self->flush();
    });
  }

  void flush() {
    if (state_ != State::ready || writing_) return;
    std::string out;
    if (!queued_records_.empty()) {
      peer::Message m;
      m.type = peer::Type::forward;
      m.id = ++next_id_;
      m.records = std::move(queued_records_);
      queued_records_.clear();
      peer::append_message(out, m);
      forwards_.emplace(m.id, std::move(queued_done_));
      queued_done_.clear();
    }
    write_requests(out, peer::Type::read, queued_reads_, reads_);
    for (auto& [node_id, done] : queued_questions_) {
      peer::Message m;
      m.type = peer::Type::member;
      m.id = ++next_id_;
      m.member.node_id = node_id;
      peer::append_message(out, m);
      questions_.emplace(m.id, std::move(done));
    }
    queued_questions_.clear();
    write_requests(out, peer::Type::build, queued_builds_, builds_);
    if (!out.empty()) write(std::move(out));
  }

  // Appends one request of `type` (it carries nothing but its id) per queued
  // completion to `out`; the completions then wait by request id.
  template <class Done>
  void write_requests(std::string& out, peer::Type type, std::vector<Done>& queued,
                      std::unordered_map<std::uint64_t, Done>& waiting) {
    for (auto& done : queued) {
      peer::Message m;
      m.type = type;
      m.id = ++next_id_;
      peer::append_message(out, m);
      waiting.emplace(m.id, std::move(done));
    }
    queued.clear();
  }

  void write(std::string bytes) {
    writing_ = true;
    out_ = std::move(bytes);
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_), [self](asio::error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec) return self->fail(ec.message());
      self->flush();
    });
  }

  asio::steady_timer watchdog_;
  bool watchdog_armed_ = false;
  // The silence after which a waiting connection is given up: the channel's
  // answer_timeout, raised by a question asked with more patience.
  std::chrono::milliseconds answer_timeout_;
  Clock::time_point last_heard_{};  // last frame from the peer (or start of the wait)
  std::string address_;
  catga_peer_secrets* secret_source_;
  SecretSet secrets_;  // taken by greet()
  const PeerChannel::Options& options_;
  RefusalLog& refusals_;
  std::string nonce_;        // this connection's, sent in the hello
  bool challenged_ = false;  // the peer proved the secret
  bool handshake_refused_ = false;  // refused by the peer, or it failed to prove itself
  std::uint64_t tls_peer_id_ = 0;  // the node its TLS certificate names
  std::function<void(const std::string&)> on_dead_;
  State state_ = State::idle;
  bool writing_ = false;
  bool flush_posted_ = false;
  std::uint64_t next_id_ = 0;
  std::string out_;
  std::vector<std::string> queued_records_;
  std::vector<PeerChannel::OutcomeDone> queued_done_;
  std::vector<PeerChannel::IndexDone> queued_reads_;
  std::unordered_map<std::uint64_t, std::vector<PeerChannel::OutcomeDone>> forwards_;
  std::unordered_map<std::uint64_t, PeerChannel::IndexDone> reads_;
  std::vector<std::pair<std::uint64_t, PeerChannel::MemberDone>> queued_questions_;
  std::unordered_map<std::uint64_t, PeerChannel::MemberDone> questions_;
  std::vector<PeerChannel::BuildDone> queued_builds_;
  std::unordered_map<std::uint64_t, PeerChannel::BuildDone> builds_;
};

// ---------------------------------------------------------------- the channel

class AsioPeerChannel final : public PeerChannel {
 public:
  AsioPeerChannel(Options options, Handler handler)
      : options_(std::move(options)), handler_(std::move(handler)), acceptor_(io_), work_(asio::make_work_guard(io_)) {}

  ~AsioPeerChannel() override { stop(); }

  void stop() override {
    if (stopped_.exchange(true)) return;
    asio::post(io_, [this] {
      asio::error_code ec;
      acceptor_.close(ec);
      for (auto& [address, connection] : clients_) connection->fail("channel stopped");
      clients_.clear();
      work_.reset();
      io_.stop();
    });
    if (thread_.joinable()) thread_.join();
  }

  Result<void> run() {
    if (auto secrets = load_secrets(); !secrets) return secrets;
    if (!options_.tls_cert_file.empty()) {
      auto tls = TlsCredentials::load({.ca_file = options_.tls_ca_file,
                                       .cert_file = options_.tls_cert_file,
                                       .key_file = options_.tls_key_file,
                                       .crl_file = options_.tls_crl_file,
                                       .label = "peer channel of node " + std::to_string(options_.node_id)});
      if (!tls) return tls.error();
      tls_ = std::move(*tls);
      if (options_.node_id != 0 && tls_->node_id() != options_.node_id) {
        return Error{Code::invalid_argument, "peer channel: the TLS certificate is for node " +
                                                 std::to_string(tls_->node_id()) + ", this node is " +
                                                 std::to_string(options_.node_id)};
      }
    }
    if (!options_.listen_address.empty()) {
      if (auto listening = listen(); !listening) return listening;
    }
    thread_ = std::thread([this] {
      try {
        io_.run();
      } catch (const std::exception& e) {
        internal::log().error("catga peer channel: I/O thread stopped: {}", e.what());
      }
    });
    return {};
  }

  // The secrets of the options, in memory or from their file (reloadable).
  Result<void> load_secrets() {
    std::vector<const void*> data;
    std::vector<std::size_t> lengths;
    if (!options_.secret.empty()) {
      data.push_back(options_.secret.data()), lengths.push_back(options_.secret.size());
      for (const auto& s : options_.accepted_secrets) data.push_back(s.data()), lengths.push_back(s.size());
    }
    const std::string label = "peer channel of node " + std::to_string(options_.node_id);
    char err[1024] = {0};
    secrets_.reset(catga_peer_secrets_new(options_.secret_file.c_str(), data.data(), lengths.data(),
                                          static_cast<unsigned>(data.size()), label.c_str(), err, sizeof err));
    if (!secrets_) return Error{Code::invalid_argument, std::string("peer channel: ") + err};
    return {};
  }

  Result<void> listen() {
    auto endpoint = resolve_listen_endpoint(io_, options_.listen_address);
    if (!endpoint) return endpoint.error();
    asio::error_code ec;
    acceptor_.open(endpoint->protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(*endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Error{Code::unavailable, "peer channel cannot listen on " + options_.listen_address + ": " + ec.message()};
    }
    port_ = acceptor_.local_endpoint().port();
    accept();
    return {};
  }

  void forward(const std::string& address, std::string record, OutcomeDone done) override {
    asio::post(io_, [this, address, record = std::move(record), done = std::move(done)]() mutable {
      client(address)->forward(std::move(record), std::move(done));
    });
  }

  void read_index(const std::string& address, IndexDone done) override {
    asio::post(io_, [this, address, done = std::move(done)]() mutable { client(address)->read_index(std::move(done)); });
  }

  void ask_member(const std::string& address, std::uint64_t node_id, std::chrono::milliseconds patience,
                  MemberDone done) override {
    asio::post(io_, [this, address, node_id, patience, done = std::move(done)]() mutable {
      client(address)->ask_member(node_id, patience, std::move(done));
    });
  }

  void ask_build(const std::string& address, BuildDone done) override {
    asio::post(io_, [this, address, done = std::move(done)]() mutable { client(address)->ask_build(std::move(done)); });
  }

  void after(std::chrono::milliseconds delay, detail::UniqueFunction<void()> f) override {
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait([timer, f = std::move(f)](asio::error_code ec) mutable {
      if (!ec) f();
    });
  }

  std::uint16_t port() const override { return port_; }

 private:
  void accept() {
    acceptor_.async_accept([this](asio::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec != asio::error::operation_aborted) internal::log().warn("catga peer channel: accept failed: {}", ec.message());
        if (!acceptor_.is_open()) return;
      } else {
        std::make_shared<ServerConnection>(std::move(socket), tls_.get(), secrets_.get(), options_, handler_, refusals_)
            ->start();
      }
      accept();
    });
  }

  std::shared_ptr<ClientConnection> client(const std::string& address) {
    auto& slot = clients_[address];
    if (!slot || slot->dead()) {
      // A dead connection is replaced on next use; pending callbacks keep it alive until then.
      slot = std::make_shared<ClientConnection>(io_, address, tls_.get(), secrets_.get(), options_, refusals_,
                                                [](const std::string&) {});
    }
    return slot;
  }

  Options options_;
  Handler handler_;
  std::shared_ptr<TlsCredentials> tls_;  // null: plain TCP
  std::unique_ptr<catga_peer_secrets, PeerSecretsFree> secrets_;  // set by run()
  std::atomic<bool> stopped_{false};
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  RefusalLog refusals_;  // I/O thread only
  std::uint16_t port_ = 0;
  std::map<std::string, std::shared_ptr<ClientConnection>> clients_;  // I/O thread only
};

}  // namespace

Result<std::unique_ptr<PeerChannel>> PeerChannel::start(Options options, Handler handler) {
  auto channel = std::make_unique<AsioPeerChannel>(std::move(options), std::move(handler));
  if (auto r = channel->run(); !r) return r.error();
  return std::unique_ptr<PeerChannel>(std::move(channel));
}

std::string default_peer_address(const std::string& raft_address) {
  auto colon = raft_address.rfind(':');
  if (colon == std::string::npos) return raft_address;
  int port = 0;
  try {
    port = std::stoi(raft_address.substr(colon + 1));
  } catch (...) {
    return raft_address;
  }
  return raft_address.substr(0, colon + 1) + std::to_string(port + 1);
}

PeerChannel::Options member_channel_options(const ClusterOptions& options, std::string listen_address) {
  return {.listen_address = std::move(listen_address),
          .node_id = options.node_id,
          .cluster_id = options.cluster_id,
          .secret = options.peer_secret,
          .accepted_secrets = options.accepted_peer_secrets,
          .secret_file = options.peer_secret_file.string(),
          .max_frame_bytes = options.max_entry_bytes * 2 + 4096,
          .answer_timeout = options.election_timeout,
          .keepalive_idle = options.election_timeout,
          .handshake_timeout = options.peer_handshake_timeout,
          .tls_ca_file = options.tls_ca_file.string(),
          .tls_cert_file = options.tls_cert_file.string(),
          .tls_key_file = options.tls_key_file.string(),
          .tls_crl_file = options.tls_crl_file.string()};
}

}  // namespace catga::internal
