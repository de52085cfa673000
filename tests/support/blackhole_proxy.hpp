// A TCP proxy on 127.0.0.1 for tests that need a link to go silent the way a
// network partition looks to TCP: after blackhole(), every byte in either
// direction is dropped and new connections are accepted and then ignored, but
// no connection is closed or reset. Unprivileged (no tc/iptables).
//
// silence_current() does that only to the connections open at the time: later
// ones are forwarded (a middlebox that lost the state of the old connections,
// or the chaos harness's proxy keeping one it should have reset).
//
// Threading: construct, set_target(), blackhole(), silence_current() and
// counters from the test thread; one thread accepts and two threads pump each connection. The
// destructor shuts every socket down and joins every thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace testsupport {

class BlackholeProxy {
 public:
  BlackholeProxy() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(0);
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 64) != 0) {
      throw std::runtime_error("BlackholeProxy: cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~BlackholeProxy() {
    stopping_ = true;
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // wakes every recv()
    }
    for (auto& t : pumps_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listener_);
  }
  BlackholeProxy(const BlackholeProxy&) = delete;
  BlackholeProxy& operator=(const BlackholeProxy&) = delete;

  // "127.0.0.1:PORT" clients connect to.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Where connections are forwarded ("127.0.0.1:PORT"); set before the first one.
  void set_target(const std::string& address) { target_port_ = std::stoi(address.substr(address.rfind(':') + 1)); }
  // From now on drop everything, keep every connection open: once this
  // returns, no byte passes (a pump checks and sends under the same lock).
  void blackhole() {
    std::lock_guard lock(pass_mu_);
    blackholed_ = true;
  }

  // The connections open now drop every byte from now on and stay open; the
  // ones accepted later are forwarded.
  void silence_current() {
    std::lock_guard lock(mu_);
    std::lock_guard pass(pass_mu_);
    silenced_.insert(fds_.begin(), fds_.end());
  }

  std::size_t accepted() const { return accepted_; }
  // Bytes received and dropped since blackhole().
  std::size_t dropped_bytes() const { return dropped_; }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    return addr;
  }

  void accept_loop() {
    while (!stopping_) {
      const int down = ::accept(listener_, nullptr, nullptr);
      if (down < 0) {
        if (stopping_) return;
        continue;
      }
      ++accepted_;
      int up = -1;
      if (!blackholed_) {
        up = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr = loopback(target_port_);
        if (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
          ::close(up);
          ::close(down);  // the target is down: refuse, as its port would
          continue;
        }
        const int one = 1;
        ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      std::lock_guard lock(mu_);
      fds_.push_back(down);
      if (up >= 0) fds_.push_back(up);
      pumps_.emplace_back([this, down, up] { pump(down, up); });
      if (up >= 0) pumps_.emplace_back([this, down, up] { pump(up, down); });
    }
  }

  // Copies src to dst (dst < 0: nowhere) until src ends or the proxy stops.
  // Until blackhole(), an end on either side ends both (as a direct
  // connection would: a peer that restarted is not a silent link; nor is a
  // silenced connection its sender closed).
  void pump(int src, int dst) {
    copy(src, dst);
    if (!blackholed_ && !stopping_ && dst >= 0) {
      ::shutdown(src, SHUT_RDWR);
      ::shutdown(dst, SHUT_RDWR);
    }
  }
  void copy(int src, int dst) {
    char buf[16384];
    while (true) {
      const ssize_t n = ::recv(src, buf, sizeof buf, 0);
      if (n <= 0 || stopping_) return;
      std::lock_guard lock(pass_mu_);
      if (blackholed_ || dst < 0 || silenced_.count(src) != 0) {
        dropped_ += static_cast<std::size_t>(n);
        continue;
      }
      for (ssize_t sent = 0; sent < n;) {
        const ssize_t w = ::send(dst, buf + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
        if (w <= 0) return;
        sent += w;
      }
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> target_port_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> blackholed_{false};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> dropped_{0};
  std::mutex pass_mu_;  // a pump's check of blackholed_ and its send, against blackhole()
  std::set<int> silenced_;  // under pass_mu_: sockets whose bytes are dropped (fds_ never reuses one)
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;             // under mu_
  std::vector<std::thread> pumps_;   // under mu_ (joined after acceptor_ ended)
};

}  // namespace testsupport
