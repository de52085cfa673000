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
#include <restinio/all.hpp>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "http/server_impl.hpp"

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
namespace {

using Clock = std::chrono::steady_clock;
// RESTinio's defaults (strands: safe with several I/O threads) with Catga's
// body limit handling.
struct Traits : restinio::default_traits_t {
  using http_methods_mapper_t = BodyLimitedMethods;
};
using HttpServer = restinio::http_server_t<Traits>;

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
  asio::io_context io;
  std::unique_ptr<HttpServer> server;  // destroyed before the io_context
  std::vector<std::thread> threads;
  std::shared_ptr<Drain> drain = std::make_shared<Drain>();
  std::atomic<bool> stopping{false};
};

namespace {

// One accepted request's answer, written from whichever thread completes it.
class RestinioResponse final : public detail::PendingResponse {
 public:
  RestinioResponse(std::shared_ptr<Core> core, std::shared_ptr<HttpStats> stats, restinio::request_handle_t request)
      : core_(std::move(core)), stats_(std::move(stats)), request_(std::move(request)), start_(Clock::now()) {
    core_->drain->begin();
  }
  void set_route(std::size_t route) noexcept { route_ = route; }
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

restinio::request_handling_status_t handle(Server::Impl& impl, const ServerOptions& options,
                                           const std::shared_ptr<Core>& core, restinio::request_handle_t req) {
  auto pending = std::make_unique<RestinioResponse>(core, impl.stats, req);
  RestinioResponse& response = *pending;
  Responder responder(std::move(pending));

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
  Request::Parts parts;
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
  const Request request(std::move(parts));
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
    : app_(app), options_(std::move(options)), impl_(std::make_unique<Impl>()) {
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

  impl_->stats = std::make_shared<HttpStats>(impl_->router);
  auto core = std::make_shared<Core>(options_.threads);
  restinio::server_settings_t<Traits> settings;
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
  try {
    core->server = std::make_unique<HttpServer>(restinio::external_io_context(core->io), std::move(settings));
    core->server->open_sync();  // binds and listens now: errors reach the caller
  } catch (const std::system_error& e) {
    return listen_error(options_, e);
  } catch (const std::exception& e) {
    return Error{Code::unavailable, "cannot listen on " + options_.address + ":" + std::to_string(options_.port) +
                                        ": " + e.what()};
  }
  for (unsigned i = 0; i < options_.threads; ++i) {
    core->threads.emplace_back([io = &core->io] { io->run(); });
  }
  impl_->core = std::move(core);
  return {};
}

void Server::stop() {
  auto core = std::move(impl_->core);
  if (!core) return;
  core->stopping = true;
  std::promise<void> closed;
  core->server->close_async([&closed]() noexcept { closed.set_value(); },
                            [&closed](std::exception_ptr) noexcept { closed.set_value(); });
  closed.get_future().wait();
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
  return {};
}

}  // namespace catga::http
