// ClusterOptions::validate() and the to_string functions of catga/cluster.hpp.
#include <arpa/inet.h>

#include <charconv>
#include <limits>
#include <set>
#include <string>

#include "catga/cluster.hpp"
#include "cluster/entry_format.hpp"
#include "cluster/member_address.hpp"
#include "cluster/peer_secrets.h"

namespace catga {
namespace {

Error invalid(std::string message) { return Error(Code::invalid_argument, std::move(message)); }

// A DNS name (RFC 1123: dot-separated labels of letters, digits and '-',
// neither starting nor ending with '-', at most 63 bytes each and 253 in all;
// one trailing dot allowed). All-numeric names are refused: they would be
// taken for an IPv4 address that is not one.
bool is_host_name(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty() || host.size() > 253) return false;
  bool any_letter = false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= host.size(); ++i) {
    const char c = i < host.size() ? host[i] : '.';
    if (c == '.') {
      if (label == 0 || label > 63 || host[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !digit && !(c == '-' && label > 0)) return false;
    any_letter = any_letter || letter || c == '-';
    ++label;
  }
  return any_letter;
}

enum class AddressUse { raft, peer };

// HOST:PORT where HOST is an IPv4 address, a DNS name (resolved at each
// connect) or, for the peer channel only, a bracketed IPv6 address. libraft
// 0.22.1's TCP transport splits HOST:PORT at the first ':' and resolves with
// AF_INET only, so the Raft address cannot be IPv6.
// `allow_port_zero`: a lone node, which nobody dials, may take any free port.
Result<void> check_address(std::string_view field, const std::string& address, AddressUse use,
                           bool allow_port_zero = false) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return invalid(std::string(field) + ": '" + address + "' is not HOST:PORT");
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || (value == 0 && !allow_port_zero) || value > 65535) {
    return invalid(std::string(field) + ": '" + address + "' has an invalid port (1..65535)");
  }
  if (host.front() == '[' || host.find(':') != std::string::npos) {
    if (use == AddressUse::raft) {
      return invalid(std::string(field) + ": '" + address +
                     "': IPv6 is not supported by the Raft transport (libraft dials IPv4 only); use an IPv4 "
                     "address or a name that resolves to one (the peer channel and HTTP take IPv6)");
    }
    in6_addr v6{};
    if (host.size() < 3 || host.front() != '[' || host.back() != ']' ||
        inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6) != 1) {
      return invalid(std::string(field) + ": '" + address + "': an IPv6 address must be written [ADDRESS]:PORT");
    }
    return ok();
  }
  // libraft's handshake carries the address in at most 256 bytes, NUL included.
  if (use == AddressUse::raft && address.size() > 255) {
    return invalid(std::string(field) + ": '" + address + "' is longer than 255 bytes");
  }
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) != 1 && !is_host_name(host)) {
    return invalid(std::string(field) + ": '" + address + "': host must be an IPv4 address or a DNS name");
  }
  return ok();
}

// Below 1 MiB, or below one entry, a byte threshold would snapshot (encode
// the whole state) for nearly every entry; both floors catch a value given in
// MiB by mistake. Trailing more bytes than the threshold would make the log
// mostly history that only a lagging follower could use.
Result<void> check_snapshot_bytes(const ClusterOptions& o) {
  constexpr std::uint64_t kMinThresholdBytes = 1u << 20;
  if (o.snapshot_threshold_bytes < kMinThresholdBytes) {
    return invalid("snapshot_threshold_bytes: must be at least " + std::to_string(kMinThresholdBytes) + " (1 MiB)");
  }
  if (o.snapshot_threshold_bytes < o.max_entry_bytes) {
    return invalid("snapshot_threshold_bytes: must be at least max_entry_bytes (" +
                   std::to_string(o.max_entry_bytes) + ")");
  }
  if (o.snapshot_trailing_bytes > o.snapshot_threshold_bytes) {
    return invalid("snapshot_trailing_bytes: must not exceed snapshot_threshold_bytes (" +
                   std::to_string(o.snapshot_threshold_bytes) + ")");
  }
  return ok();
}

}  // namespace

Result<void> internal::check_member_addresses(const std::string& field, const Member& m, bool allow_port_zero) {
  if (auto r = check_address(field + ".address", m.address, AddressUse::raft, allow_port_zero); !r) return r;
  if (!m.peer_address.empty()) {
    if (auto r = check_address(field + ".peer_address", m.peer_address, AddressUse::peer); !r) return r;
    if (m.peer_address == m.address) return invalid(field + ".peer_address: must differ from the Raft address");
  }
  return ok();
}

Result<void> ClusterOptions::validate() const {
  constexpr auto kMaxMs = std::chrono::milliseconds(std::numeric_limits<unsigned>::max());
  if (node_id == 0) return invalid("node_id: must not be 0");
  if (members.empty()) return invalid("members: must list every member, this node included");
  std::set<std::uint64_t> ids;
  std::set<std::string> addresses;
  bool self_found = false;
  bool any_voter = false;
  for (const Member& m : members) {
    if (m.id == 0) return invalid("members: member id must not be 0");
    if (!ids.insert(m.id).second) return invalid("members: duplicate id " + std::to_string(m.id));
    const std::string field = "members[" + std::to_string(m.id) + "]";
    if (auto r = internal::check_member_addresses(field, m, members.size() == 1); !r) return r;
    if (!addresses.insert(m.address).second) {
      return invalid("members: duplicate address " + m.address);
    }
    if (m.role != MemberRole::voter && m.role != MemberRole::standby && m.role != MemberRole::spare) {
      return invalid("members[" + std::to_string(m.id) + "].role: unknown role");
    }
    if (m.id == node_id) self_found = true;
    if (m.role == MemberRole::voter) any_voter = true;
  }
  if (!self_found) return invalid("members: node_id " + std::to_string(node_id) + " is not listed");
  if (!any_voter) return invalid("members: at least one member must be a voter");
  if (data_dir.empty()) return invalid("data_dir: must not be empty");
  if (new_cluster && join) return invalid("new_cluster: not with join (a joining node never bootstraps)");
  if (force_new_cluster && join) return invalid("force_new_cluster: not with join (it recovers a survivor's own log)");
  if (election_timeout.count() <= 0) return invalid("election_timeout: must be positive");
  if (election_timeout > kMaxMs) return invalid("election_timeout: too large");
  if (heartbeat_interval.count() <= 0) return invalid("heartbeat_interval: must be positive");
  if (heartbeat_interval >= election_timeout) {
    return invalid("heartbeat_interval: must be shorter than election_timeout");
  }
  if (snapshot_threshold == 0) return invalid("snapshot_threshold: must be at least 1");
  if (snapshot_threshold > std::numeric_limits<unsigned>::max()) {
    return invalid("snapshot_threshold: too large");
  }
  // libraft 0.22.1's disk layer takes a trailing of 0 for an installed
  // snapshot: it would reset the next append index and delete every closed
  // segment, entries after the snapshot included.
  if (snapshot_trailing == 0) return invalid("snapshot_trailing: must be at least 1");
  if (snapshot_trailing > std::numeric_limits<unsigned>::max()) {
    return invalid("snapshot_trailing: too large");
  }
  constexpr std::size_t kMinEntryBytes = 64;
  constexpr std::size_t kMaxEntryBytes = std::size_t{4} << 20;
  if (max_entry_bytes < kMinEntryBytes) {
    return invalid("max_entry_bytes: must be at least " + std::to_string(kMinEntryBytes));
  }
  if (max_entry_bytes > kMaxEntryBytes) {
    return invalid("max_entry_bytes: must be at most " + std::to_string(kMaxEntryBytes));
  }
  if (auto r = check_snapshot_bytes(*this); !r) return r;
  if (snapshot_growth_percent > 10'000) return invalid("snapshot_growth_percent: must be at most 10000");
  if (cluster_id.empty()) return invalid("cluster_id: must not be empty");
  if (!peer_secret.empty() && peer_secret.size() < 16) {
    return invalid("peer_secret: must be at least 16 bytes when set (empty: insecure mode)");
  }
  if (!accepted_peer_secrets.empty() && peer_secret.empty()) {
    return invalid("accepted_peer_secrets: needs peer_secret (the one this node proves itself with)");
  }
  if (accepted_peer_secrets.size() > 8) return invalid("accepted_peer_secrets: at most 8");
  for (const auto& accepted : accepted_peer_secrets) {
    if (accepted.size() < 16) return invalid("accepted_peer_secrets: each must be at least 16 bytes");
  }
  if (!peer_secret_file.empty()) {
    if (!peer_secret.empty() || !accepted_peer_secrets.empty()) {
      return invalid("peer_secret_file: set it or peer_secret/accepted_peer_secrets, not both");
    }
    char err[1024] = {0};
    if (catga_peer_secrets_check_file(peer_secret_file.c_str(), err, sizeof err) != 0) {
      return invalid(std::string("peer_secret_file: ") + err);
    }
  }
  if (!tls_enabled() && (!tls_ca_file.empty() || !tls_cert_file.empty() || !tls_key_file.empty())) {
    return invalid("tls_ca_file, tls_cert_file, tls_key_file: set all three (mutual TLS) or none");
  }
  if (!tls_crl_file.empty() && !tls_enabled()) return invalid("tls_crl_file: needs the three TLS files");
  if (peer_handshake_timeout < std::chrono::milliseconds(1) || peer_handshake_timeout > kMaxMs) {
    return invalid("peer_handshake_timeout: must be between 1 ms and " + std::to_string(kMaxMs.count()) + " ms");
  }
  if (max_entries_in_flight == 0) return invalid("max_entries_in_flight: must be at least 1");
  if (max_entries_in_flight > 4096) return invalid("max_entries_in_flight: must be at most 4096");
  return ok();
}

std::string_view to_string(MemberRole role) noexcept {
  switch (role) {
    case MemberRole::voter: return "voter";
    case MemberRole::standby: return "standby";
    case MemberRole::spare: return "spare";
  }
  return "unknown";
}

std::string_view to_string(NodeRole role) noexcept {
  switch (role) {
    case NodeRole::unavailable: return "unavailable";
    case NodeRole::follower: return "follower";
    case NodeRole::candidate: return "candidate";
    case NodeRole::leader: return "leader";
  }
  return "unknown";
}

}  // namespace catga
