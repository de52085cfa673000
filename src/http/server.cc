// The HTTP transport: RESTinio on standalone Asio. The only translation unit
// that includes RESTinio (it is slow to compile): everything else in the HTTP
// layer sees requests as catga::http::Request and answers through Responder.
//
// Lifetimes: the io_context, the RESTinio server and the I/O threads live in a
// `Core` shared by every pending response, so a response completed late (from
// the node's loop thread) never touches a destroyed io_context. `stop()`
// closes the acceptor, waits (bounded) until every accepted request has been
// answered and written, then stops the io_context and joins the threads.
//
// Bodies over ServerOptions::max_body_bytes: RESTinio 0.6.16's parser drops
// the connection without a word when a body passes its limit. Catga replaces
// the parser's body callbacks (RESTinio builds them per HTTP-methods mapper
// type, so Catga's own mapper gets its own specialization below): past the
// limit the body is read and discarded, never stored, and the request reaches
// the handler marked, which answers 413 with `Connection: close`.
//
// HTTPS (ServerOptions::tls): RESTinio's TLS socket, with Catga's own
// `prepare_connection_and_start_read` for it (found by argument-dependent
// lookup through TlsTraits): it points the connection at the newest
// certificates, bounds the handshake (RESTinio puts no timeout on it), logs a
// refused handshake in one line, and records a verified client certificate's
// name for the connection's requests.
#include <restinio/all.hpp>
#include <restinio/tls.hpp>
#include <sys/socket.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "catga/logging.hpp"
#include "core/waiter.hpp"
#include "http/credentials.hpp"
#include "http/transport_access.hpp"
#include "http/server_impl.hpp"
#include "http/tls_context.hpp"

namespace catga::http::internal {

// RESTinio's own HTTP method mapping under a type of Catga's, so that
// create_parser_settings<BodyLimitedMethods> below is Catga's to define.
struct BodyLimitedMethods : restinio::default_http_methods_t {};

// The header field that marks a request whose body passed the limit (its
// value: the declared length, or empty for a chunked body). A client's own
// field of that name is removed before the mark is set.
inline constexpr std::string_view kBodyOverLimit = "catga-body-over-limit";

}  // namespace catga::http::internal

namespace restinio::impl {

template <>
inline http_parser_settings create_parser_settings<catga::http::internal::BodyLimitedMethods>() noexcept {
  using catga::http::internal::kBodyOverLimit;
  static constexpr auto over_limit = [](http_parser_ctx_t& ctx) { return ctx.m_header.has_field(kBodyOverLimit); };
  static constexpr auto mark_over_limit = [](http_parser_ctx_t& ctx, std::string declared) noexcept {
    try {
      ctx.m_header.set_field(std::string(kBodyOverLimit), std::move(declared));
      std::string().swap(ctx.m_body);  // what was read so far goes too
      ctx.m_chunked_info_block.m_chunks.clear();
      return 0;
    } catch (...) {
      return -1;
    }
  };
  http_parser_settings settings = create_parser_settings<restinio::default_http_methods_t>();
  settings.on_headers_complete = [](http_parser* parser) -> int {
    auto& ctx = *static_cast<http_parser_ctx_t*>(parser->data);
    ctx.m_header.remove_all_of(kBodyOverLimit);
    if (parser->content_length != ULLONG_MAX && parser->content_length > ctx.m_limits.max_body_size()) {
      ctx.m_leading_headers_completed = true;
      return mark_over_limit(ctx, std::to_string(parser->content_length));
    }
    return restinio_headers_complete_cb(parser);
  };
  settings.on_body = [](http_parser* parser, const char* at, size_t length) -> int {
    auto& ctx = *static_cast<http_parser_ctx_t*>(parser->data);
    if (over_limit(ctx)) return 0;  // discarded
    if (ctx.m_body.size() + length > ctx.m_limits.max_body_size()) return mark_over_limit(ctx, {});
    return restinio_body_cb(parser, at, length);
  };
  settings.on_chunk_header = [](http_parser* parser) -> int {
    if (over_limit(*static_cast<http_parser_ctx_t*>(parser->data))) return 0;
    return restinio_chunk_header_cb(parser);
  };
  settings.on_message_complete = [](http_parser* parser) -> int {
    return restinio_message_complete_cb<catga::http::internal::BodyLimitedMethods>(parser);
  };
  return settings;
}

}  // namespace restinio::impl

namespace catga::http {
namespace internal {

using Clock = std::chrono::steady_clock;
// RESTinio's defaults (strands: safe with several I/O threads) with Catga's
// body limit handling.
struct Traits : restinio::default_traits_t {
  using http_methods_mapper_t = BodyLimitedMethods;
};

// The verified client-certificate name of each open HTTPS connection.
class TlsConnections {
 public:
  void state_changed(const restinio::connection_state::notice_t& notice) noexcept {
    if (!restinio::holds_alternative<restinio::connection_state::closed_t>(notice.cause())) return;
    std::lock_guard lock(mutex_);
    names_.erase(notice.connection_id());
  }
  void set(restinio::connection_id_t id, std::string name) {
    std::lock_guard lock(mutex_);
    names_[id] = std::move(name);
  }
  std::optional<std::string> name(restinio::connection_id_t id) const {
    std::lock_guard lock(mutex_);
    auto found = names_.find(id);
    if (found == names_.end()) return std::nullopt;
    return found->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<restinio::connection_id_t, std::string> names_;
};

struct TlsTraits : restinio::tls_traits_t<restinio::asio_timer_manager_t, restinio::null_logger_t> {
  using http_methods_mapper_t = BodyLimitedMethods;
  using connection_state_listener_t = TlsConnections;
};

// What an HTTPS server's handshakes need; the base SSL_CTX's ex data slot
// `guard_slot()` points at it (its owner, Core, outlives every connection's
// handshake). Not the app data: asio::ssl::context keeps its verify callback
// there.
struct HandshakeGuard {
  std::shared_ptr<TlsContexts> contexts;
  std::shared_ptr<TlsConnections> connections = std::make_shared<TlsConnections>();
  RefusalLog refusals;
};

int guard_slot() {
  static const int slot = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

// One handshake's race between its completion and its deadline.
struct HandshakeState {
  explicit HandshakeState(const asio::any_io_executor& executor) : timer(executor) {}
  std::mutex mutex;
  bool finished = false;
  bool timed_out = false;
  asio::steady_timer timer;
};

std::string peer_text(const restinio::impl::tls_socket_t& socket) {
  asio::error_code ec;
  const auto remote = socket.lowest_layer().remote_endpoint(ec);
  if (ec) return "an unknown peer";
  return remote.address().to_string() + ":" + std::to_string(remote.port());
}

// Replaces RESTinio's handshake for Catga's HTTPS connections (see the top).
template <class StartRead, class Failed>
void prepare_connection_and_start_read(restinio::impl::tls_socket_t& socket,
                                       restinio::impl::connection_t<TlsTraits>& connection, StartRead start_read,
                                       Failed failed) {
  SSL* ssl = socket.asio_ssl_stream().native_handle();
  auto* guard = static_cast<HandshakeGuard*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), guard_slot()));
  guard->contexts->prepare(ssl);
  const auto timeout = guard->contexts->options().handshake_timeout;
  // Taken now: once a client aborts, its address can no longer be asked for.
  std::string peer = peer_text(socket);
  auto state = std::make_shared<HandshakeState>(socket.lowest_layer().get_executor());
  state->timer.expires_after(timeout);
  // The connection (and so the descriptor) lives until the handshake's
  // completion has run, and the descriptor is only shut down before it.
  state->timer.async_wait([state, fd = socket.lowest_layer().native_handle()](const asio::error_code& ec) {
    if (ec) return;
    std::lock_guard lock(state->mutex);
    if (state->finished) return;
    state->timed_out = true;
    ::shutdown(fd, SHUT_RDWR);  // the handshake's pending read fails now
  });
  socket.async_handshake(
      asio::ssl::stream_base::server,
      [state, guard, ssl, peer = std::move(peer), timeout, start_read = std::move(start_read), failed = std::move(failed),
       keep = connection.shared_from_this(), id = connection.connection_id()](const asio::error_code& ec) mutable {
        {
          std::lock_guard lock(state->mutex);
          state->finished = true;
        }
        state->timer.cancel();
        if (!ec) {
          if (auto name = verified_peer_name(ssl)) guard->connections->set(id, std::move(*name));
          return start_read();
        }
        if (state->timed_out) {
          guard->refusals.refused("HTTPS: closed the connection from " + peer + ": its TLS handshake did not finish within " +
                                  std::to_string(timeout.count()) + " ms");
        } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
          log_message(LogLevel::debug, "HTTPS: " + peer + " closed the connection before finishing the TLS handshake");
        } else {
          guard->refusals.refused("HTTPS: refused the connection from " + peer + ": " + handshake_failure(ec, ssl));
        }
        failed(ec);
      });
}

namespace {

// Counts requests accepted and not yet written, so stop() can drain them.
class Drain {
 public:
  void begin() {
    std::lock_guard lock(mutex_);
    ++in_flight_;
  }
  void end() {
    std::lock_guard lock(mutex_);
    if (--in_flight_ == 0) idle_.notify_all();
  }
  void wait_idle(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    idle_.wait_until(lock, deadline, [&] { return in_flight_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t in_flight_ = 0;
};

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : "Error";
  }
}

bool method_of(const restinio::http_method_id_t& id, Method& out) {
  if (id == restinio::http_method_get()) out = Method::get;
  else if (id == restinio::http_method_head()) out = Method::head;
  else if (id == restinio::http_method_post()) out = Method::post;
  else if (id == restinio::http_method_put()) out = Method::put;
  else if (id == restinio::http_method_patch()) out = Method::patch;
  else if (id == restinio::http_method_delete()) out = Method::del;
  else return false;
  return true;
}

Error listen_error(const ServerOptions& options, const std::system_error& e) {
  const std::string where = "cannot listen on " + options.address + ":" + std::to_string(options.port) + ": ";
  const int value = e.code().value();
  Code code = Code::unavailable;
  if (value == EACCES || value == EPERM) code = Code::permission_denied;
  else if (value == EADDRNOTAVAIL || value == EAFNOSUPPORT) code = Code::invalid_argument;
  return Error{code, where + e.code().message()};
}

}  // namespace

struct Core {
  explicit Core(unsigned threads) : io(static_cast<int>(threads)) {}
  std::shared_ptr<HandshakeGuard> https;  // HTTPS only; outlives the io_context
  asio::io_context io;
  // The RESTinio server (of Traits or TlsTraits), destroyed before the
  // io_context, and how to close it.
  std::shared_ptr<void> server;
  std::function<void(std::function<void()> closed)> close_async;
  std::vector<std::thread> threads;
  std::shared_ptr<Drain> drain = std::make_shared<Drain>();
  std::atomic<bool> stopping{false};
  std::unique_ptr<asio::steady_timer> reload_timer;
};

namespace {

// One accepted request's answer, written from whichever thread completes it.
class RestinioResponse final : public PendingResponse {
 public:
  RestinioResponse(std::shared_ptr<Core> core, std::shared_ptr<HttpStats> stats, restinio::request_handle_t request)
      : core_(std::move(core)), stats_(std::move(stats)), request_(std::move(request)), start_(Clock::now()) {
    core_->drain->begin();
  }
  void set_route(std::size_t route) noexcept { route_ = route; }

  bool after(std::chrono::milliseconds delay, catga::detail::UniqueFunction<void()> f) override {
    auto timer = std::make_shared<asio::steady_timer>(core_->io, delay);
    timer->async_wait([timer, f = std::move(f)](const asio::error_code& ec) mutable {
      if (!ec) f();
    });
    return true;
  }
  // The answer ends the connection (`Connection: close`).
  void close_connection() noexcept { close_ = true; }

  void send(int status, std::string body, std::string_view content_type, Headers headers) noexcept override {
    stats_->record(route_, status, Clock::now() - start_);
    try {
      auto response = request_->create_response(
          restinio::http_status_line_t{restinio::http_status_code_t{static_cast<std::uint16_t>(status)}, reason_phrase(status)});
      if (!content_type.empty()) response.append_header(restinio::http_field::content_type, std::string(content_type));
      for (auto& [name, value] : headers) response.append_header(std::move(name), std::move(value));
      if (close_ || core_->stopping.load(std::memory_order_relaxed)) response.connection_close();
      response.set_body(std::move(body));
      response.done([drain = core_->drain](const asio::error_code&) { drain->end(); });
    } catch (...) {
      core_->drain->end();  // the connection is gone or broken: nothing to write
    }
  }

 private:
  std::shared_ptr<Core> core_;
  std::shared_ptr<HttpStats> stats_;
  restinio::request_handle_t request_;
  Clock::time_point start_;
  std::size_t route_ = static_cast<std::size_t>(-1);  // unmatched
  bool close_ = false;
};

// The caller: a listed bearer token (an unlisted one is refused, unless it is
// the admin token), else a verified client certificate's name, else nobody.
Result<std::shared_ptr<const Principal>> authenticate(ServerImpl& impl, const ServerOptions& options,
                                                      const Core& core, const restinio::request_t& req) {
  const auto table = impl.credentials.get();
  if (table) {
    if (auto authorization = req.header().opt_value_of(restinio::http_field::authorization)) {
      std::string_view value = *authorization;
      if (value.starts_with("Bearer ")) {
        const std::string_view token = value.substr(7);
        if (auto principal = table->by_token(token)) return principal;
        if (options.admin_token.empty() || !same_secret(token, options.admin_token)) {
          return Error{Code::unauthenticated, "the bearer token is not known to this server"};
        }
      }
    }
  }
  if (core.https) {
    if (auto name = core.https->connections->name(req.connection_id())) {
      if (table) return table->by_subject(*name);
      return std::make_shared<const Principal>(
          Principal{.name = std::move(*name), .roles = {}, .authenticated_by = "certificate"});
    }
  }
  return std::shared_ptr<const Principal>();
}

restinio::request_handling_status_t handle(ServerImpl& impl, const ServerOptions& options,
                                           const std::shared_ptr<Core>& core, restinio::request_handle_t req) {
  auto pending = std::make_unique<RestinioResponse>(core, impl.stats, req);
  RestinioResponse& response = *pending;
  Responder responder = ResponderAccess::make(std::move(pending));

  Method method{};
  if (!method_of(req->header().method(), method)) {
    responder.error(Error{Code::unimplemented, "HTTP method " + std::string(req->header().method().c_str()) +
                                                   " is not supported"},
                    {}, 501);
    return restinio::request_accepted();
  }
  if (core->stopping.load(std::memory_order_relaxed)) {
    responder.error(Error{Code::unavailable, "the server is stopping"});
    return restinio::request_accepted();
  }
  const std::string_view path = req->header().path();
  Router::Match match;
  std::string allow;
  switch (impl.router.match(method, path, match, allow)) {
    case Router::Outcome::matched:
      break;
    case Router::Outcome::no_route:
      responder.error(Error{Code::not_found, "no route for " + std::string(to_string(method)) + " " + std::string(path)});
      return restinio::request_accepted();
    case Router::Outcome::wrong_method:
      responder.error(Error{Code::invalid_argument, std::string(to_string(method)) + " is not allowed on " +
                                                        std::string(path) + " (allowed: " + allow + ")"},
                      {{"Allow", allow}}, 405);
      return restinio::request_accepted();
    case Router::Outcome::bad_path:
      responder.error(Error{Code::invalid_argument, "malformed request path"});
      return restinio::request_accepted();
  }
  response.set_route(match.id);
  if (const auto declared = req->header().opt_value_of(kBodyOverLimit)) {
    // The body was read and discarded by the parser (see the top of this file).
    const std::string size = declared->empty() ? "request body" : "request body of " + std::string(*declared) + " bytes";
    response.close_connection();
    responder.error(Error{Code::invalid_argument,
                          size + " exceeds the limit of " + std::to_string(options.max_body_bytes) + " bytes"},
                    {}, 413);
    return restinio::request_accepted();
  }
  auto query = parse_query(req->header().query());
  if (!query) {
    responder.error(query.error());
    return restinio::request_accepted();
  }
  RequestParts parts;
  parts.method = method;
  parts.path = path;
  parts.route = match.pattern;
  parts.params = std::move(match.params);
  parts.query = std::move(*query);
  req->header().for_each_field([&](const restinio::http_header_field_t& field) {
    if (field.name() == kBodyOverLimit) return;
    parts.headers.emplace_back(field.name(), field.value());
  });
  parts.body = req->body();
  auto principal = authenticate(impl, options, *core, *req);
  if (!principal) {
    responder.error(principal.error(), {{"WWW-Authenticate", "Bearer"}});
    return restinio::request_accepted();
  }
  parts.principal = std::move(*principal);
  const Request request = RequestAccess::make(std::move(parts));
  try {
    impl.router.handler(match.id)(request, std::move(responder));
  } catch (...) {
    // The handler's Responder was destroyed while unwinding: it answered 500.
  }
  return restinio::request_accepted();
}

}  // namespace
}  // namespace internal

Server::Server(Application& app, ServerOptions options)
    : app_(app), options_(std::move(options)), impl_(std::make_unique<internal::ServerImpl>()) {
  impl_->port = options_.port;
}

Server::~Server() { stop(); }

void Server::note(Error error) { impl_->errors.push_back(std::move(error)); }

Server& Server::add_route(Method method, std::string_view pattern, Handler handler) {
  if (impl_->core) {
    note(Error{Code::failed_precondition, "route " + std::string(pattern) + " added after start()"});
    return *this;
  }
  if (auto added = impl_->router.add(method, pattern, std::move(handler)); !added) note(added.error());
  return *this;
}

std::uint16_t Server::port() const noexcept { return impl_->port.load(); }

Result<void> Server::start() {
  using namespace internal;
  if (impl_->core) return Error{Code::failed_precondition, "the server is already started"};
  if (auto valid = options_.validate(); !valid) return valid;
  if (!impl_->errors.empty()) {
    std::string message = "the server's routes are invalid:";
    for (const auto& e : impl_->errors) message += " " + e.message() + ";";
    message.pop_back();
    return Error{impl_->errors.front().code(), std::move(message)};
  }
  asio::error_code ec;
  const auto address = asio::ip::make_address(options_.address, ec);
  if (ec) return Error{Code::invalid_argument, "ServerOptions::address \"" + options_.address + "\" is not an IP address"};
  if (impl_->cluster_admin && options_.admin_token.empty() && !address.is_loopback()) {
    return Error{Code::failed_precondition,
                 "the cluster admin endpoints listen on " + options_.address +
                     " without an admin_token: set ServerOptions::admin_token or listen on loopback"};
  }

  if (!options_.credentials_file.empty()) {
    auto table = CredentialTable::load(options_.credentials_file);
    if (!table) return table.error();
    impl_->credentials.set(std::move(*table));
  }
  std::shared_ptr<TlsContexts> contexts;
  if (options_.tls) {
    auto created = TlsContexts::create(*options_.tls);
    if (!created) return created.error();
    contexts = std::move(*created);
  }

  impl_->stats = std::make_shared<HttpStats>(impl_->router);
  auto core = std::make_shared<Core>(options_.threads);
  auto configure = [&](auto& settings) {
    settings.address(address)
        .port(options_.port)
        .protocol(address.is_v6() ? asio::ip::tcp::v6() : asio::ip::tcp::v4())
        .buffer_size(16u << 10)
        .read_next_http_message_timelimit(options_.idle_timeout)
        .handle_request_timeout(options_.request_timeout + std::chrono::seconds(5))
        .write_http_response_timelimit(std::chrono::seconds(30))
        .max_pipelined_requests(options_.max_pipelined_requests)
        .incoming_http_msg_limits(restinio::incoming_http_msg_limits_t{}
                                      .max_url_size(16u << 10)
                                      .max_field_name_size(1u << 10)
                                      .max_field_value_size(16u << 10)
                                      .max_field_count(128)
                                      .max_body_size(options_.max_body_bytes))  // past it: 413, see above
        .socket_options_setter([](restinio::socket_options_t& socket) {
          asio::error_code ignored;
          socket.set_option(asio::ip::tcp::no_delay{true}, ignored);
        })
        .acceptor_post_bind_hook([impl = impl_.get()](asio::ip::tcp::acceptor& acceptor) {
          impl->port = acceptor.local_endpoint().port();
        })
        .request_handler([impl = impl_.get(), options = &options_, weak = std::weak_ptr<Core>(core)](
                             restinio::request_handle_t req) {
          auto core = weak.lock();
          if (!core) return restinio::request_rejected();
          return handle(*impl, *options, core, std::move(req));
        });
  };
  auto open = [&]<class T>(restinio::server_settings_t<T> settings) -> Result<void> {
    using Http = restinio::http_server_t<T>;
    try {
      auto server = std::make_shared<Http>(restinio::external_io_context(core->io), std::move(settings));
      server->open_sync();  // binds and listens now: errors reach the caller
      core->close_async = [server = server.get()](std::function<void()> closed) {
        server->close_async([closed]() noexcept { closed(); }, [closed](std::exception_ptr) noexcept { closed(); });
      };
      core->server = std::move(server);
    } catch (const std::system_error& e) {
      return listen_error(options_, e);
    } catch (const std::exception& e) {
      return Error{Code::unavailable, "cannot listen on " + options_.address + ":" + std::to_string(options_.port) +
                                          ": " + e.what()};
    }
    return {};
  };
  Result<void> opened;
  if (contexts) {
    core->https = std::make_shared<HandshakeGuard>();
    core->https->contexts = contexts;
    SSL_CTX_set_ex_data(contexts->base()->native_handle(), guard_slot(), core->https.get());
    restinio::server_settings_t<TlsTraits> settings;
    configure(settings);
    settings.tls_context(contexts->base()).connection_state_listener(core->https->connections);
    opened = open(std::move(settings));
  } else {
    restinio::server_settings_t<Traits> settings;
    configure(settings);
    opened = open(std::move(settings));
  }
  if (!opened) return opened;
  for (unsigned i = 0; i < options_.threads; ++i) {
    core->threads.emplace_back([io = &core->io] { io->run(); });
  }
  impl_->core = std::move(core);
  schedule_reload_check();
  return {};
}

namespace internal {
namespace {

// Reads the credentials and TLS files again (for `core`'s server); on an
// error nothing changes.
Result<void> reload_files(ServerImpl& impl, const ServerOptions& options, Core* core) {
  std::shared_ptr<const CredentialTable> table;
  if (!options.credentials_file.empty()) {
    auto loaded = CredentialTable::load(options.credentials_file);
    if (!loaded) return loaded.error();
    table = std::move(*loaded);
  }
  if (core && core->https) {
    if (auto reloaded = core->https->contexts->reload(); !reloaded) return reloaded;
  }
  if (table) impl.credentials.set(std::move(table));
  return {};
}

std::vector<std::string> watched_files(const ServerOptions& options, const Core& core) {
  auto files = core.https->contexts->files();
  if (!options.credentials_file.empty()) files.push_back(options.credentials_file);
  return files;
}

// Every TlsOptions::reload_interval: reload when a file's time changed. Runs
// on the I/O threads, one check at a time; it holds the core it was given
// (never reads ServerImpl::core, which stop() takes away).
void arm_reload_check(ServerImpl& impl, const ServerOptions& options, const std::shared_ptr<Core>& core) {
  core->reload_timer->expires_after(options.tls->reload_interval);
  core->reload_timer->async_wait([&impl, &options, weak = std::weak_ptr<Core>(core)](const asio::error_code& ec) {
    auto core = weak.lock();
    if (ec || !core || core->stopping) return;
    if (impl.stamps.changed(watched_files(options, *core))) {
      if (auto reloaded = reload_files(impl, options, core.get()); !reloaded) {
        log_message(LogLevel::error, "HTTPS: reloading the certificates failed, the old ones stay: " +
                                         reloaded.error().message());
      } else {
        log_message(LogLevel::info, "HTTPS: certificates and credentials reloaded");
      }
    }
    arm_reload_check(impl, options, core);
  });
}

}  // namespace
}  // namespace internal

Result<void> Server::reload() {
  auto core = impl_->core;
  return internal::reload_files(*impl_, options_, core.get());
}

// Called by start(), on its thread.
void Server::schedule_reload_check() {
  using namespace internal;
  const auto& core = impl_->core;
  if (!options_.tls || options_.tls->reload_interval.count() <= 0) return;
  core->reload_timer = std::make_unique<asio::steady_timer>(core->io);
  impl_->stamps.changed(watched_files(options_, *core));  // the times to compare with
  arm_reload_check(*impl_, options_, core);
}

void Server::stop() {
  auto core = std::move(impl_->core);
  if (!core) return;
  core->stopping = true;
  // A pending reload check is dropped by io.stop() below (and re-arms no more
  // once `stopping` is set).
  catga::internal::Waiter<bool> closed;
  core->close_async([&closed] { closed.set(true); });
  closed.wait();
  // Every request carries a deadline of request_timeout; a raw handler that
  // holds its Responder longer is cut off here.
  core->drain->wait_idle(internal::Clock::now() + options_.request_timeout + std::chrono::seconds(1));
  core->io.stop();
  for (auto& thread : core->threads) thread.join();
  impl_->port = options_.port;
  // `core` (the io_context) goes when the last late response lets go of it.
}

Result<void> ServerOptions::validate() const {
  auto bad = [](std::string what) { return Error{Code::invalid_argument, "ServerOptions::" + std::move(what)}; };
  if (address.empty()) return bad("address is empty");
  if (threads == 0 || threads > 256) return bad("threads must be 1..256");
  if (max_body_bytes == 0 || max_body_bytes > (1ull << 30)) return bad("max_body_bytes must be 1 B..1 GiB");
  if (request_timeout.count() <= 0) return bad("request_timeout must be positive");
  if (idle_timeout.count() <= 0) return bad("idle_timeout must be positive");
  if (max_pipelined_requests == 0) return bad("max_pipelined_requests must be at least 1");
  for (char c : admin_token) {
    if (c < 0x21 || c > 0x7e) return bad("admin_token must be visible ASCII characters");
  }
  if (tls) {
    if (tls->cert_file.empty()) return bad("tls.cert_file is empty");
    if (tls->key_file.empty()) return bad("tls.key_file is empty");
    if (tls->client_certificates != ClientCertificates::none && tls->client_ca_file.empty()) {
      return bad("tls.client_ca_file is empty but client certificates are asked for");
    }
    if (!tls->crl_file.empty() && tls->client_certificates == ClientCertificates::none) {
      return bad("tls.crl_file needs client certificates (client_certificates optional or required)");
    }
    if (tls->handshake_timeout.count() <= 0) return bad("tls.handshake_timeout must be positive");
    if (tls->reload_interval.count() < 0) return bad("tls.reload_interval must not be negative");
  }
  return {};
}

}  // namespace catga::http
