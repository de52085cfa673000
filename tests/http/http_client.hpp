// A small blocking HTTP/1.1 client for the HTTP tests: one keep-alive
// connection to 127.0.0.1, requests written as given (raw bytes allowed,
// several at once for pipelining), responses read with Content-Length or
// chunked bodies. Every read is bounded (SO_RCVTIMEO): a hung server fails
// the test instead of hanging it.
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace catga::testing {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key.size() == name.size() &&
          std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
        return value;
      }
    }
    return std::nullopt;
  }
  nlohmann::json json() const { return nlohmann::json::parse(body); }
  // The canonical code of an error body ("" if the body is not one).
  std::string error_code() const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) return {};
    return j["error"].value("code", "");
  }
};

class HttpClient {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  explicit HttpClient(std::uint16_t port, std::chrono::seconds read_timeout = std::chrono::seconds(20)) : socket_(io_) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), port});
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(read_timeout.count());
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  static std::string format(std::string_view method, std::string_view target, std::string_view body = {},
                            const Headers& headers = {}, std::string_view content_type = "application/json") {
    std::string out = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!body.empty() && !content_type.empty()) out += "Content-Type: " + std::string(content_type) + "\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
      out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    out += "\r\n";
    out += body;
    return out;
  }

  HttpResponse request(std::string_view method, std::string_view target, std::string_view body = {},
                       const Headers& headers = {}, std::string_view content_type = "application/json") {
    send_raw(format(method, target, body, headers, content_type));
    return read_response();
  }
  HttpResponse get(std::string_view target, const Headers& headers = {}) { return request("GET", target, {}, headers); }
  HttpResponse post(std::string_view target, std::string_view json, const Headers& headers = {}) {
    return request("POST", target, json, headers);
  }

  void send_raw(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes.data(), bytes.size())); }

  HttpResponse read_response() {
    HttpResponse response;
    std::string head = read_until("\r\n\r\n");
    std::size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) throw std::runtime_error("bad status line: " + status_line);
    response.status = std::stoi(status_line.substr(9, 3));
    std::size_t pos = line_end + 2;
    while (pos < head.size() - 2) {
      std::size_t end = head.find("\r\n", pos);
      std::string line = head.substr(pos, end - pos);
      pos = end + 2;
      if (line.empty()) break;
      std::size_t colon = line.find(':');
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      response.headers.emplace_back(line.substr(0, colon), value);
    }
    if (auto length = response.header("Content-Length")) {
      response.body = read_exactly(std::stoul(*length));
    } else if (auto encoding = response.header("Transfer-Encoding"); encoding && *encoding == "chunked") {
      while (true) {
        std::size_t size = std::stoul(read_until("\r\n"), nullptr, 16);
        response.body += read_exactly(size);
        read_exactly(2);
        if (size == 0) break;
      }
    }
    return response;
  }

  // True when the server closed the connection (reads EOF).
  bool closed_by_peer() {
    if (!buffer_.empty()) return false;
    char c;
    asio::error_code ec;
    socket_.read_some(asio::buffer(&c, 1), ec);
    if (!ec) buffer_.push_back(c);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  std::string read_until(std::string_view delimiter) {
    while (true) {
      if (auto at = buffer_.find(delimiter); at != std::string::npos) {
        std::string out = buffer_.substr(0, at + delimiter.size());
        buffer_.erase(0, at + delimiter.size());
        return out;
      }
      fill();
    }
  }
  std::string read_exactly(std::size_t n) {
    while (buffer_.size() < n) fill();
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
  }
  void fill() {
    char chunk[16384];
    asio::error_code ec;
    std::size_t n = socket_.read_some(asio::buffer(chunk), ec);
    if (ec) throw std::runtime_error("HTTP read failed: " + ec.message());
    buffer_.append(chunk, n);
  }

  asio::io_context io_;
  asio::ip::tcp::socket socket_;
  std::string buffer_;
};

}  // namespace catga::testing
