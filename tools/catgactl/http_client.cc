#include "http_client.hpp"

#include <asio.hpp>
#include <asio/ssl.hpp>

#include <algorithm>
#include <cctype>

namespace catgactl {
namespace {

using catga::Code;
using catga::Error;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

// Parses a whole HTTP/1.1 response read until the peer closed.
catga::Result<Response> parse_response(const std::string& raw, const std::string& where) {
  auto bad = [&](std::string why) {
    return Error{Code::unavailable, where + ": bad HTTP response: " + std::move(why)};
  };
  const std::size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return bad(raw.empty() ? "empty reply" : "no end of headers");
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12) return bad("no status line");
  Response response;
  try {
    response.status = std::stoi(raw.substr(9, 3));
  } catch (...) {
    return bad("no status code");
  }
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    const std::size_t end = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, end - pos);
    pos = end + 2;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) return bad("header line without ':'");
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    response.headers.emplace_back(line.substr(0, colon), std::move(value));
  }
  std::string body = raw.substr(head_end + 4);
  if (const std::string length = response.header("Content-Length"); !length.empty()) {
    const std::size_t n = std::stoul(length);
    if (body.size() < n) return bad("body shorter than its Content-Length");
    body.resize(n);
  } else if (iequals(response.header("Transfer-Encoding"), "chunked")) {
    std::string decoded;
    std::size_t at = 0;
    while (true) {
      const std::size_t line_end = body.find("\r\n", at);
      if (line_end == std::string::npos) return bad("truncated chunk");
      const std::size_t size = std::stoul(body.substr(at, line_end - at), nullptr, 16);
      if (size == 0) break;
      if (line_end + 2 + size > body.size()) return bad("truncated chunk");
      decoded += body.substr(line_end + 2, size);
      at = line_end + 2 + size + 2;
    }
    body = std::move(decoded);
  }
  response.body = std::move(body);
  return response;
}

}  // namespace

std::string Response::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return {};
}

catga::Result<Endpoint> parse_endpoint(std::string_view text, bool default_tls) {
  std::string_view rest = text;
  bool tls = default_tls;
  if (rest.starts_with("https://")) {
    tls = true;
    rest.remove_prefix(8);
  }
  if (rest.starts_with("http://")) {
    tls = false;
    rest.remove_prefix(7);
  }
  while (rest.ends_with("/")) rest.remove_suffix(1);
  const std::size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) {
    return Error{Code::invalid_argument, "endpoint '" + std::string(text) + "' is not HOST:PORT"};
  }
  const std::string_view port = rest.substr(colon + 1);
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) || port.size() > 5) {
    return Error{Code::invalid_argument, "endpoint '" + std::string(text) + "' has a bad port"};
  }
  std::string_view host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return Endpoint{std::string(host), std::string(port), tls};
}

catga::Result<std::vector<Endpoint>> parse_endpoints(std::string_view list, bool default_tls) {
  std::vector<Endpoint> out;
  while (true) {
    const std::size_t comma = list.find(',');
    auto endpoint = parse_endpoint(list.substr(0, comma), default_tls);
    if (!endpoint) return endpoint.error();
    out.push_back(std::move(*endpoint));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

namespace {

// Connects `socket` (a TCP socket, or the lowest layer of a TLS stream), then
// `next()`; the first error lands in `failure`.
template <class Socket, class Next>
void connect(asio::ip::tcp::resolver& resolver, Socket& socket, const Endpoint& endpoint, asio::error_code& failure,
             Next next) {
  resolver.async_resolve(endpoint.host, endpoint.port,
                         [&, next](asio::error_code ec, asio::ip::tcp::resolver::results_type found) mutable {
                           if (ec) {
                             failure = ec;
                             return;
                           }
                           asio::async_connect(socket, found,
                                               [&, next](asio::error_code ec, const asio::ip::tcp::endpoint&) mutable {
                                                 if (ec) failure = ec;
                                                 else next();
                                               });
                         });
}

// What one exchange needs; it lives on request()'s stack while the io_context runs.
struct Exchange {
  std::string out;
  std::string raw;
  asio::error_code failure;
  std::array<char, 16384> chunk{};
  std::function<void()> read_more;
};

// Writes `x.out` on `stream` and reads the reply until the peer closes it.
template <class Stream>
void exchange(Stream& stream, Exchange& x) {
  x.read_more = [&stream, &x] {
    stream.async_read_some(asio::buffer(x.chunk), [&x](asio::error_code ec, std::size_t n) {
      x.raw.append(x.chunk.data(), n);
      // A TLS peer that closes without close_notify ends the reply too (the
      // body's length is checked when parsing).
      if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) return;
      if (ec) x.failure = ec;
      else x.read_more();
    });
  };
  asio::async_write(stream, asio::buffer(x.out), [&x](asio::error_code ec, std::size_t) {
    if (ec) x.failure = ec;
    else x.read_more();
  });
}

catga::Result<std::unique_ptr<asio::ssl::context>> client_context(const Endpoint& endpoint, const TlsFiles& tls) {
  auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  asio::error_code ec;
  auto bad = [&](const std::string& what) { return Error{Code::invalid_argument, what + ": " + ec.message()}; };
  SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
  if (tls.ca.empty()) {
    if (context->set_default_verify_paths(ec)) return bad("the system's CA certificates");
  } else if (context->load_verify_file(tls.ca, ec)) {
    return bad("--cacert " + tls.ca);
  }
  if (!tls.certificate.empty() && context->use_certificate_chain_file(tls.certificate, ec)) {
    return bad("--cert " + tls.certificate);
  }
  if (!tls.key.empty() && context->use_private_key_file(tls.key, asio::ssl::context::pem, ec)) {
    return bad("--key " + tls.key);
  }
  context->set_verify_mode(asio::ssl::verify_peer);
  context->set_verify_callback(asio::ssl::host_name_verification(endpoint.host));
  return context;
}

}  // namespace

catga::Result<Response> request(const Endpoint& endpoint, const Call& call, std::chrono::milliseconds timeout,
                                const TlsFiles& tls) {
  const std::string where = endpoint.text();
  Exchange x;
  std::string& out = x.out;
  out = call.method + " " + call.path + " HTTP/1.1\r\nHost: " + endpoint.host + ":" + endpoint.port +
                    "\r\nConnection: close\r\nUser-Agent: catgactl\r\n";
  if (!call.token.empty()) out += "Authorization: Bearer " + call.token + "\r\n";
  if (!call.body.empty()) out += "Content-Type: application/json\r\n";
  if (!call.body.empty() || call.method != "GET") out += "Content-Length: " + std::to_string(call.body.size()) + "\r\n";
  out += "\r\n" + call.body;

  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  asio::error_code& failure = x.failure;
  std::unique_ptr<asio::ssl::context> context;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket>> stream;
  asio::ip::tcp::socket socket(io);
  if (endpoint.tls) {
    auto made = client_context(endpoint, tls);
    if (!made) return made.error();
    context = std::move(*made);
    stream = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket>>(io, *context);
    asio::error_code parse_ec;
    asio::ip::make_address(endpoint.host, parse_ec);
    if (parse_ec) SSL_set_tlsext_host_name(stream->native_handle(), endpoint.host.c_str());  // SNI for names only
    connect(resolver, stream->lowest_layer(), endpoint, failure, [&] {
      stream->async_handshake(asio::ssl::stream_base::client, [&](asio::error_code ec) {
        if (ec) failure = ec;
        else exchange(*stream, x);
      });
    });
  } else {
    connect(resolver, socket, endpoint, failure, [&] { exchange(socket, x); });
  }
  io.run_for(timeout);
  if (!io.stopped()) {
    return Error{Code::deadline_exceeded, where + ": no answer within " + std::to_string(timeout.count()) + " ms"};
  }
  if (failure) return Error{Code::unavailable, where + ": " + failure.message()};
  return parse_response(x.raw, where);
}

}  // namespace catgactl
