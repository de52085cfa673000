// Member addresses in the Raft configuration (member_address.hpp).
#include "cluster/member_address.hpp"

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

}  // namespace catga::internal
