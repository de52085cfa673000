// Uses catga::http from an install: an in-memory application behind the HTTP
// server on a free loopback port, asked for /health over a real socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catga/application.hpp>
#include <catga/http.hpp>

#include <cstdio>
#include <string>

struct Counter {
  long value = 0;
  MSGPACK_DEFINE_MAP(value);
};

int main() {
  catga::ApplicationBuilder<Counter> builder;
  builder.in_memory();
  auto app = builder.build();
  if (!app) return std::fprintf(stderr, "build: %s\n", app.error().to_string().c_str()), 1;
  catga::http::Server server(**app, {.port = 0});
  server.map_health();
  if (auto started = server.start(); !started) {
    return std::fprintf(stderr, "start: %s\n", started.error().to_string().c_str()), 1;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(server.port());
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return std::perror("connect"), 1;
  const std::string request = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return 1;
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  server.stop();
  if (reply.rfind("HTTP/1.1 200", 0) != 0) return std::fprintf(stderr, "unexpected reply:\n%s\n", reply.c_str()), 1;
  std::puts("consumer-http: ok");
  return 0;
}
