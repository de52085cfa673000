// How a member's addresses are written into the Raft configuration, so that
// the peer channel address given when a member is added travels with it
// (docs/configuration.md, "Addresses").
//
// The configuration holds one address string per member: "RAFT" when the
// peer channel listens on the default port (the Raft port + 1), or
// "RAFT/PEER" when the member was given an explicit peer address. The suffix
// is Catga's: raft_c.c strips it before libraft's transport dials, and every
// reader of the configuration splits it here. Pure functions, any thread.
#pragma once

#include <string>
#include <string_view>

#include "catga/cluster.hpp"
#include "catga/result.hpp"

namespace catga::internal {

inline constexpr char kPeerAddressSeparator = '/';

// "RAFT" or "RAFT/PEER" for `m` (its address and peer_address).
std::string configuration_address(const Member& m);

// Splits a configuration address into `m.address` and `m.peer_address`
// (empty when the stored string has no suffix).
void split_configuration_address(std::string_view stored, Member& m);

// The address checks of ClusterOptions::validate() for one member, as for a
// member added at runtime: `field` names it in the error (invalid_argument).
Result<void> check_member_addresses(const std::string& field, const Member& m, bool allow_port_zero = false);

}  // namespace catga::internal
