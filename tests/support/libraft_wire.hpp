// libraft 0.22.1's TCP bytes, for tests that speak to a Raft port directly:
// little-endian words, the handshake, a blocking client and the
// authenticated exchange (raft_auth.h) a member runs after the handshake.
// raft_wire.hpp adds the bank cluster's checks.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "cluster/raft_auth.h"

namespace testsupport {

inline void put64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// libraft's TCP handshake (src/uv_tcp_connect.c): protocol 1, the sender's
// id, the padded address length, the address and its NUL padding.
inline std::string libraft_handshake(std::uint64_t id, const std::string& address) {
  std::string out;
  const std::size_t padded = (address.size() + 1 + 7) / 8 * 8;
  put64(out, 1);
  put64(out, id);
  put64(out, padded);
  out += address;
  out.append(padded - address.size(), '\0');
  return out;
}

// A blocking client whose every read gives up after 30 s: no test hangs.
class RawRaftClient {
 public:
  explicit RawRaftClient(const std::string& address) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    const auto colon = address.rfind(':');
    ::inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    timeval tv{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawRaftClient() { ::close(fd_); }
  RawRaftClient(const RawRaftClient&) = delete;
  RawRaftClient& operator=(const RawRaftClient&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  bool write(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Exactly n bytes, or fewer if the peer closed (or 30 s passed).
  std::string read(std::size_t n) {
    std::string out(n, '\0');
    std::size_t have = 0;
    while (have < n) {
      const ssize_t r = ::recv(fd_, out.data() + have, n - have, 0);
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    out.resize(have);
    return out;
  }
  // True when the peer closed the connection (EOF or reset) within 30 s.
  bool closed_by_peer() {
    char buf[256];
    while (true) {
      const ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r == 0) return true;
      if (r < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

// The dialler's side of raft_auth.h's exchange, as a member would run it,
// with the secret given (and the address the dialler
// claims), over any client with write(bytes) and read(n)
// (plain TCP or TLS): true when the listener welcomed it.
template <class Client>
bool authenticate(Client& c, const std::string& secret, std::uint64_t self_id, std::uint64_t listener_id,
                  const std::string& cluster_id = "catga",
                  const std::string& self_address = "127.0.0.1:1") {
  std::uint8_t nonce[CATGA_AUTH_NONCE] = {7, 7, 7};
  std::string hello = "CATGAHI1" + std::string(reinterpret_cast<char*>(nonce), sizeof nonce);
  if (!c.write(libraft_handshake(self_id, self_address) + hello)) return false;
  const std::string challenge = c.read(CATGA_AUTH_CHALLENGE);
  if (challenge.size() != CATGA_AUTH_CHALLENGE || challenge.substr(0, 8) != "CATGACH1") return false;
  const auto* listener_nonce = reinterpret_cast<const std::uint8_t*>(challenge.data() + 8);
  std::uint8_t proof[CATGA_AUTH_MAC];
  if (catga_auth_mac(secret.data(), secret.size(), "raft", 'D', cluster_id.c_str(), nonce, listener_nonce, self_id,
                     listener_id, proof) != 0)
    return false;
  if (!c.write(std::string(reinterpret_cast<char*>(proof), sizeof proof))) return false;
  return c.read(CATGA_AUTH_WELCOME) == "CATGAOK1";
}

}  // namespace testsupport
