// Member addresses in the Raft configuration (member_address.hpp).
#include "cluster/member_address.hpp"

#include <algorithm>

#include "cluster/peer_channel.hpp"

namespace catga::internal {

std::string configuration_address(const Member& m) {
  if (m.peer_address.empty()) return m.address;
  return m.address + kPeerAddressSeparator + m.peer_address;
}

void split_configuration_address(std::string_view stored, Member& m) {
  const auto slash = stored.find(kPeerAddressSeparator);
  m.address = std::string(stored.substr(0, slash));
  m.peer_address = slash == std::string_view::npos ? std::string() : std::string(stored.substr(slash + 1));
}

std::string peer_channel_address(const Member& m) {
  return m.peer_address.empty() ? default_peer_address(m.address) : m.peer_address;
}

std::optional<Error> peer_address_refusal(const Member& m, const NodeStatus& status) {
  if (m.peer_address.empty()) return std::nullopt;
  std::string lacking;
  for (const MemberStatus& held : status.members) {
    const auto a = std::find_if(status.announcements.begin(), status.announcements.end(),
                                [&](const MemberAnnouncement& x) { return x.id == held.member.id; });
    if (a != status.announcements.end() && a->max_format >= kPeerAddressFormat) continue;
    lacking += (lacking.empty() ? "" : ", ") + std::to_string(held.member.id) +
               (a == status.announcements.end() ? " (no announcement yet)"
                                                : " (apply formats up to " + std::to_string(a->max_format) + ")");
  }
  if (lacking.empty()) return std::nullopt;
  return Error(Code::failed_precondition,
               "member " + std::to_string(m.id) + " has an explicit peer address (" + m.peer_address +
                   "), stored in the configuration as RAFT/PEER, which a build older than apply format " +
                   std::to_string(kPeerAddressFormat) + " would dial as written; not every member has announced a "
                   "build that reads it: member(s) " + lacking +
                   ". Upgrade them and let them announce (GET /raft/status, \"announcements\"), or add the member "
                   "without a peer address (its peer channel then listens on the Raft port + 1); docs/operations.md, "
                   "\"Rolling upgrades\"");
}

std::optional<Error> joiner_refusal(const Member& m, const Result<peer::BuildInfo>& answer) {
  const std::string at = m.peer_address;
  std::string found;
  if (!answer) {
    const std::string why(answer.error().message());
    switch (answer.error().code()) {
      case Code::unimplemented:
        found = "the node at " + at + " does not say what build it runs (" + why +
                "): a build older than this one's peer protocol cannot confirm that it reads RAFT/PEER";
        break;
      case Code::unauthenticated:
        found = "the node at " + at + " did not complete this cluster's peer handshake (" + why + ")";
        break;
      default:
        found = "nothing answers the peer protocol at " + at + " (" + why + ")";
        break;
    }
  } else if (answer->node_id != m.id) {
    found = "member " + std::to_string(answer->node_id) + " answers there, not " + std::to_string(m.id);
  } else if (answer->max_format < kPeerAddressFormat) {
    found = "its build implements apply formats up to " + std::to_string(answer->max_format);
  } else {
    return std::nullopt;
  }
  return Error(Code::failed_precondition,
               "member " + std::to_string(m.id) + " cannot be added with the peer address " + at +
                   " (stored in the configuration as RAFT/PEER, which a build older than apply format " +
                   std::to_string(kPeerAddressFormat) + " would dial as written): " + found +
                   ". Start the new member first (with --join and this peer address; it must run a build that "
                   "implements apply format " + std::to_string(kPeerAddressFormat) +
                   " or later), or add it without a peer address (its peer channel then listens on the Raft port "
                   "+ 1); nothing was changed. docs/operations.md, \"Rolling upgrades\"");
}

}  // namespace catga::internal
