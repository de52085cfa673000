// catga/http.hpp — the HTTP edge of an Application: JSON routes that map a
// request to a command or query and render its result, generic endpoints for
// every registered message, health checks, Prometheus metrics and cluster
// administration.
//
//   auto app = builder.build();  // Result<std::unique_ptr<Application>>
//   catga::http::Server server(**app, {.port = 8080});
//   server.post("/orders", [](const catga::http::Request& r) { return r.json<CreateOrder>(); }, {.status = 201})
//         .get("/orders/{id}", [](const catga::http::Request& r) { return GetOrder{.id = r.param<std::uint64_t>("id")}; })
//         .map_health()
//         .map_metrics(&metrics);
//   if (auto started = server.start(); !started) { /* e.g. the port is taken */ }
//
// Threading: the server runs its own I/O threads (`ServerOptions::threads`).
// Route handlers run on them and must be safe to call concurrently; they must
// not block. Typed routes use the Application's callback API, so no thread
// waits for a command to replicate: the response is completed from whichever
// thread completes the request (an I/O thread for local work, the node's loop
// thread for replicated work). A `Responder` may be completed from any thread.
//
// Ownership: the Server borrows the Application (and any Metrics), which must
// outlive it. Register routes before `start()`; `stop()` (or the destructor)
// stops accepting, lets in-flight requests finish (bounded by
// `request_timeout`), then joins the I/O threads.
//
// Errors are rendered in one place with one body shape:
//   {"error": {"code": "not_found", "message": "order 7 does not exist"}}
// and the status follows the error's canonical code (see `status_for`).
//
// Security: the server listens on loopback by default and speaks plain HTTP;
// `ServerOptions::tls` makes it HTTPS (TLS 1.2 or 1.3, optionally requiring
// client certificates). Mutating cluster-admin endpoints require
// `Authorization: Bearer <admin_token>` when a token is set (and a token is
// required to expose them beyond loopback). `ServerOptions::credentials_file`
// maps bearer tokens and client-certificate subjects to a `Principal` that
// pipeline behaviours see (docs/security.md).
#pragma once

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "catga/application.hpp"
#include "catga/codec.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/export.hpp"
#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga {
class Metrics;
}  // namespace catga

namespace catga::http {

namespace internal {
// Behind the public types (src/http/transport_access.hpp, src/http/server_impl.hpp).
struct RequestParts;
struct RequestAccess;
class PendingResponse;
struct ResponderAccess;
struct ServerImpl;
}  // namespace internal

enum class Method : std::uint8_t { get, head, post, put, patch, del };
CATGA_EXPORT std::string_view to_string(Method method) noexcept;  // "GET", ..., "DELETE"

// Extra response headers, in order.
using Headers = std::vector<std::pair<std::string, std::string>>;

// Response header carrying the log index of the entry that applied a command.
inline constexpr std::string_view kIndexHeader = "X-Catga-Index";
// Request header with the index a read_your_writes query must wait for.
inline constexpr std::string_view kMinIndexHeader = "X-Catga-Min-Index";
inline constexpr std::string_view kIdempotencyKeyHeader = "Idempotency-Key";

// The HTTP status for an error code: invalid_argument/out_of_range 400,
// unauthenticated 401, permission_denied 403, not_found 404,
// already_exists/failed_precondition/aborted 409, resource_exhausted 429,
// cancelled 499, unimplemented 501, unavailable 503, deadline_exceeded 504,
// everything else 500.
CATGA_EXPORT int status_for(Code code) noexcept;

// Which clients must present a certificate signed by `TlsOptions::client_ca_file`.
enum class ClientCertificates : std::uint8_t {
  none,      // not asked for
  optional,  // asked for; a client without one is still served (a presented
             // certificate that does not verify is refused)
  required,  // a client without a valid one is refused during the handshake
};

// HTTPS. Files are PEM. They are read at start() and again by
// Server::reload() (or every `reload_interval`): new connections get the new
// certificate, open ones keep theirs.
struct TlsOptions {
  std::string cert_file;       // the server's certificate chain
  std::string key_file;        // its key (unencrypted)
  std::string client_ca_file;    // CAs trusted for client certificates
  ClientCertificates client_certificates = ClientCertificates::none;
  // Optional, with client certificates: a PEM file of certificate revocation
  // lists from the client CA. A revoked client certificate is then refused
  // during the handshake (and every client certificate once the list is past
  // its next update: publish a fresh one in time). Reloaded with the others.
  std::string crl_file;
  // A connection whose handshake has not finished after this long is closed
  // (RESTinio itself puts no bound on it).
  std::chrono::milliseconds handshake_timeout{10'000};
  // How often the files are checked for a change (0: only Server::reload()).
  std::chrono::milliseconds reload_interval{0};
};

struct CATGA_EXPORT ServerOptions {
  // Address to listen on (IPv4 or IPv6 literal). Loopback by default: expose
  // the service deliberately.
  std::string address = "127.0.0.1";
  // 0: the OS picks a free port; `Server::port()` reports it.
  std::uint16_t port = 0;
  // I/O threads running the handlers.
  unsigned threads = 2;
  // Larger bodies, whatever their size, are read and discarded (never
  // stored) and answered 413 with `Connection: close`.
  std::size_t max_body_bytes = 1u << 20;
  // The deadline of every command and query sent on behalf of a request
  // (CommandOptions/QueryOptions::timeout); exceeding it answers 504.
  std::chrono::milliseconds request_timeout{10'000};
  // Keep-alive connections idle longer than this are closed.
  std::chrono::milliseconds idle_timeout{60'000};
  // Requests a client may pipeline on one connection before its responses.
  std::size_t max_pipelined_requests = 16;
  // When non-empty, mutating /raft/* endpoints require
  // `Authorization: Bearer <admin_token>` (401 otherwise).
  std::string admin_token;
  // HTTPS when set.
  std::optional<TlsOptions> tls;
  // When non-empty: a file mapping credentials to principals, one per line,
  //   token   <bearer-token>  <principal> [role,role...]
  //   subject <certificate-CN> <principal> [role,role...]
  // ('#' starts a comment). A request's `Authorization: Bearer` token must be
  // listed (401 otherwise); a verified client certificate whose subject CN is
  // not listed becomes a principal named after the CN, without roles.
  // Reloaded with the certificates.
  std::string credentials_file;

  // Checks every field; the error names the offending one.
  Result<void> validate() const;
};

// One incoming request, as a route handler sees it. Valid only during the
// handler call (copy what an asynchronous handler needs later).
//
// Accessors that parse (`param<T>`, `query<T>`, `json<M>`) never throw: on
// bad input they return a default (or an error) and record the first failure
// on the request; the server then answers that failure (400, or 415 for a
// non-JSON body) instead of sending anything.
class CATGA_EXPORT Request {
 public:
  struct Failure {
    int status = 400;
    Error error;
  };

  Method method() const noexcept { return method_; }
  // The path as received (percent-encoded, without the query string).
  std::string_view path() const noexcept { return path_; }
  // The pattern of the matched route, e.g. "/orders/{id}".
  std::string_view route() const noexcept { return route_; }

  // A path parameter, percent-decoded ("" when the route has none of that name).
  std::string_view param(std::string_view name) const noexcept;
  // A path parameter parsed as T (integers, floating point, std::string).
  template <class T>
  T param(std::string_view name) const;

  // A query-string value, decoded (`+` is a space); nullopt when absent.
  std::optional<std::string_view> query(std::string_view name) const noexcept;
  template <class T>
  std::optional<T> query(std::string_view name) const;

  // A header value (name case-insensitive); nullopt when absent.
  std::optional<std::string_view> header(std::string_view name) const noexcept;
  std::string_view body() const noexcept { return body_; }
  // The authenticated caller (ServerOptions::credentials_file, or a client
  // certificate), or nullptr. Commands and queries sent for the request carry it.
  const std::shared_ptr<const Principal>& principal() const noexcept { return principal_; }

  // The body as a JSON document converted to MessagePack. Requires a JSON
  // content type (415 otherwise) and well-formed JSON (400). An empty body
  // reads as `{}`.
  Result<std::string> json_as_msgpack() const;
  // The body as message (or any MSGPACK_DEFINE_MAP type) M, fields by name.
  template <class M>
  Result<M> json() const;

  // Records a failure (the first one wins) and returns its error.
  Error fail(int status, Error error) const;
  const Failure* failure() const noexcept { return failure_ ? &*failure_ : nullptr; }

 private:
  // Only the server makes requests (internal::RequestAccess).
  friend struct internal::RequestAccess;
  explicit Request(internal::RequestParts parts);

  template <class T>
  Result<T> parse(std::string_view what, std::string_view name, std::string_view text) const;

  Method method_;
  std::string_view path_;
  std::string_view route_;
  std::vector<std::pair<std::string_view, std::string>> params_;
  std::vector<std::pair<std::string, std::string>> query_;
  std::vector<std::pair<std::string_view, std::string_view>> headers_;
  std::string_view body_;
  std::shared_ptr<const Principal> principal_;
  mutable std::optional<Failure> failure_;
};

// The right to answer one request, exactly once, from any thread. Move-only.
// A Responder destroyed without answering answers 500 ("the handler did not
// respond"), so a connection never hangs on a forgotten request.
class CATGA_EXPORT Responder {
 public:
  Responder(Responder&&) noexcept;
  Responder& operator=(Responder&&) noexcept;
  ~Responder();

  // Any body and content type.
  void send(int status, std::string body, std::string_view content_type, Headers headers = {});
  // A JSON document (already serialized).
  void json(int status, std::string json_text, Headers headers = {});
  // A MessagePack value (e.g. `catga::encode(order)`) rendered as JSON; 500
  // if it cannot be rendered.
  void msgpack_as_json(int status, std::string_view msgpack_value, Headers headers = {});
  // No body (204 and the like).
  void empty(int status, Headers headers = {});
  // The error body, with the status `status_for(error.code())` (or `status`
  // when non-zero; a node that stopped itself: 503); 503 adds `Retry-After: 1`.
  void error(const Error& error, Headers headers = {}, int status = 0);
  void fail(const Request::Failure& failure) { error(failure.error, {}, failure.status); }

  bool responded() const noexcept { return pending_ == nullptr; }

 private:
  // Only the server makes responders (internal::ResponderAccess).
  friend struct internal::ResponderAccess;
  explicit Responder(std::unique_ptr<internal::PendingResponse> pending) noexcept;

  std::unique_ptr<internal::PendingResponse> pending_;
};

// How a typed route answers.
struct RouteOptions {
  // Status on success; 0: 200, or 204 for a command without a result.
  int status = 0;
  // Default consistency of a query route (`?consistency=` overrides it).
  Consistency consistency = Consistency::local;
};

namespace detail {
template <class T>
struct Unwrapped {
  using type = T;
};
template <class T>
struct Unwrapped<Result<T>> {
  using type = T;
};
// The message a typed route's mapper produces (it returns M or Result<M>).
template <class F>
using MappedMessage = typename Unwrapped<std::remove_cvref_t<std::invoke_result_t<F&, const Request&>>>::type;

// Options derived from a request; on a bad header or query value the
// request's failure is recorded and nullopt returned.
CATGA_EXPORT std::optional<CommandOptions> command_options(const Request& request, std::chrono::milliseconds timeout);
CATGA_EXPORT std::optional<QueryOptions> query_options(const Request& request, Consistency fallback,
                                          std::chrono::milliseconds timeout);
// The `X-Catga-Index` header for a non-zero index.
CATGA_EXPORT Headers index_headers(std::uint64_t index);

// Answers with a typed result (JSON of the value, or the mapped error).
template <class R>
void reply(Responder& responder, const Result<R>& result, int status, std::uint64_t index) {
  Headers headers = index_headers(index);
  if (!result) return responder.error(result.error(), std::move(headers));
  if constexpr (std::is_void_v<R>) {
    responder.empty(status ? status : 204, std::move(headers));
  } else {
    responder.msgpack_as_json(status ? status : 200, encode(*result), std::move(headers));
  }
}

CATGA_EXPORT Error parse_error(std::string_view what, std::string_view name, std::string_view text, std::string_view expected);
}  // namespace detail

class CATGA_EXPORT Server {
 public:
  // Called for every request a raw route matches, concurrently from the I/O
  // threads; must answer through the Responder (now or later, any thread).
  using Handler = catga::detail::UniqueFunction<void(const Request&, Responder)>;

  explicit Server(Application& app, ServerOptions options = {});
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // stop()

  // ---- routes (before start) ----
  // Patterns are literal segments and `{name}` parameters: "/orders/{id}".
  // `f` is either a raw handler `(const Request&, Responder)` or a mapper
  // `(const Request&) -> M | Result<M>` producing a command, query or event
  // that the route sends and whose result it renders as JSON. Commands answer
  // with `X-Catga-Index`, take `Idempotency-Key`; queries take
  // `?consistency=local|read_your_writes|linearizable` and `?min_index=N` (or
  // `X-Catga-Min-Index`); events answer 202 once published.
  // Invalid or duplicate patterns are reported by start().
  template <class F>
  Server& route(Method method, std::string_view pattern, F f, RouteOptions options = {});
  template <class F>
  Server& get(std::string_view pattern, F f, RouteOptions options = {}) {
    return route(Method::get, pattern, std::move(f), options);
  }
  template <class F>
  Server& post(std::string_view pattern, F f, RouteOptions options = {}) {
    return route(Method::post, pattern, std::move(f), options);
  }
  template <class F>
  Server& put(std::string_view pattern, F f, RouteOptions options = {}) {
    return route(Method::put, pattern, std::move(f), options);
  }
  template <class F>
  Server& patch(std::string_view pattern, F f, RouteOptions options = {}) {
    return route(Method::patch, pattern, std::move(f), options);
  }
  template <class F>
  Server& del(std::string_view pattern, F f, RouteOptions options = {}) {
    return route(Method::del, pattern, std::move(f), options);
  }

  // GET /health, /health/live, /health/ready.
  Server& map_health();
  // GET /: a self-contained HTML dashboard of this node's view of the cluster
  // (leader, members and roles, term, commit/applied index, recent throughput),
  // refreshed every second from GET /cluster/overview (JSON). Read-only.
  Server& map_dashboard();
  // GET /metrics (Prometheus text): the server's own HTTP series, the node's
  // gauges, and — when given — the per-message series of `metrics`.
  Server& map_metrics(const Metrics* metrics = nullptr);
  // POST /commands/{wire-name}, POST /queries/{wire-name},
  // POST /events/{wire-name}, GET /messages: a JSON body becomes the
  // registered message of that wire name and is sent exactly like a typed
  // call, every pipeline behaviour included. An unknown wire name (or one of
  // the other kind) answers 404 with code unimplemented.
  Server& map_message_endpoints();
  // GET /raft/status; with the admin token: POST /raft/members,
  // PUT /raft/members/{id}/role, DELETE /raft/members/{id},
  // POST /raft/leadership, POST /raft/snapshot (202 with the index the
  // snapshot covers), POST /raft/backup (an online backup file, backup.hpp).
  // Reported by start() when listening beyond loopback without an admin_token.
  Server& map_cluster_admin();

  // ---- lifecycle ----
  // Reports registration errors, invalid options, and bind failures
  // (e.g. unavailable: "cannot listen on 127.0.0.1:8080: Address already in use").
  Result<void> start();
  // Idempotent; see the header comment.
  void stop();
  // Reads the TLS files and the credentials file again; new connections and
  // requests use them. On an error (named) nothing changes.
  Result<void> reload();
  // The bound port once started (the requested one before).
  std::uint16_t port() const noexcept;

  Application& application() noexcept { return app_; }
  const ServerOptions& options() const noexcept { return options_; }

 private:
  Server& add_route(Method method, std::string_view pattern, Handler handler);
  void schedule_reload_check();
  void note(Error error);
  template <class M>
  void send_message(const Request& request, Responder responder, Result<M> message, const RouteOptions& options);

  Application& app_;
  ServerOptions options_;
  std::unique_ptr<internal::ServerImpl> impl_;
};

// ---------------------------------------------------------------- templates

template <class T>
Result<T> Request::parse(std::string_view what, std::string_view name, std::string_view text) const {
  if constexpr (std::is_same_v<T, std::string>) {
    return std::string(text);
  } else if constexpr (std::is_same_v<T, std::string_view>) {
    return text;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "1") return true;
    if (text == "false" || text == "0") return false;
    return fail(400, detail::parse_error(what, name, text, "true or false"));
  } else {
    static_assert(std::is_arithmetic_v<T>, "param<T>/query<T> parse integers, floating point, bool and strings");
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) {
      return fail(400, detail::parse_error(what, name, text, std::is_integral_v<T> ? "an integer in range" : "a number"));
    }
    return value;
  }
}

template <class T>
T Request::param(std::string_view name) const {
  Result<T> parsed = parse<T>("path parameter", name, param(name));
  return parsed ? std::move(*parsed) : T{};
}

template <class T>
std::optional<T> Request::query(std::string_view name) const {
  auto text = query(name);
  if (!text) return std::nullopt;
  Result<T> parsed = parse<T>("query parameter", name, *text);
  if (!parsed) return std::nullopt;
  return std::move(*parsed);
}

template <class M>
Result<M> Request::json() const {
  auto bytes = json_as_msgpack();
  if (!bytes) return std::move(bytes).error();
  auto decoded = decode<M>(*bytes);
  if (!decoded) return fail(400, Error{Code::invalid_argument, "request body: " + decoded.error().message()});
  return decoded;
}

template <class F>
Server& Server::route(Method method, std::string_view pattern, F f, RouteOptions options) {
  if constexpr (std::is_invocable_v<F&, const Request&, Responder>) {
    return add_route(method, pattern, Handler(std::move(f)));
  } else {
    static_assert(std::is_invocable_v<F&, const Request&>,
                  "a route takes a handler (const Request&, Responder) or a mapper (const Request&) -> M | Result<M>");
    using M = detail::MappedMessage<F>;
    static_assert(Message<M>, "a route's mapper returns a command, query or event (or a Result of one)");
    return add_route(method, pattern,
                     [this, f = std::move(f), options](const Request& request, Responder responder) mutable {
                       send_message<M>(request, std::move(responder), Result<M>(f(request)), options);
                     });
  }
}

template <class M>
void Server::send_message(const Request& request, Responder responder, Result<M> message,
                          const RouteOptions& options) {
  if (const auto* failure = request.failure()) return responder.fail(*failure);
  if (!message) return responder.error(message.error());
  const int status = options.status;
  if constexpr (CommandMessage<M>) {
    auto command_options = detail::command_options(request, options_.request_timeout);
    if (!command_options) return responder.fail(*request.failure());
    app_.send_receipt(*message, *command_options,
                      [responder = std::move(responder), status](Receipt<result_of<M>> receipt) mutable {
                        detail::reply(responder, receipt.result, status, receipt.index);
                      });
  } else if constexpr (QueryMessage<M>) {
    auto query_options = detail::query_options(request, options.consistency, options_.request_timeout);
    if (!query_options) return responder.fail(*request.failure());
    app_.send(*message, *query_options, [responder = std::move(responder), status](Result<result_of<M>> result) mutable {
      detail::reply(responder, result, status, 0);
    });
  } else {
    auto command_options = detail::command_options(request, options_.request_timeout);
    if (!command_options) return responder.fail(*request.failure());
    app_.publish(*message, *command_options, [responder = std::move(responder), status](Result<void> result) mutable {
      detail::reply(responder, result, status ? status : 202, 0);
    });
  }
}

}  // namespace catga::http
