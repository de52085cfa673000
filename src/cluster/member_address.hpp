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

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "catga/cluster.hpp"
#include "catga/result.hpp"
#include "cluster/peer_protocol.hpp"

namespace catga::internal {

inline constexpr char kPeerAddressSeparator = '/';

// "RAFT" or "RAFT/PEER" for `m` (its address and peer_address).
std::string configuration_address(const Member& m);

// Where member `m`'s peer channel listens: its peer_address, or the default
// (the Raft host and port + 1).
std::string peer_channel_address(const Member& m);

// Splits a configuration address into `m.address` and `m.peer_address`
// (empty when the stored string has no suffix).
void split_configuration_address(std::string_view stored, Member& m);

// Every build that implements apply format 2 or later (announcement_table.hpp)
// stores an explicit peer address as "RAFT/PEER" and splits it wherever it
// reads the configuration; a build announcing at most format 1 may predate
// that and would dial the whole string.
inline constexpr std::uint32_t kPeerAddressFormat = 2;

// The version guard of add_member (on the leader): adding `m` with an
// explicit peer address is refused (failed_precondition, naming them) while
// some member of `status.members` has not announced (status.announcements) a
// build that reads "RAFT/PEER"; a member without a peer address needs no
// guard. Nothing when it may go ahead.
std::optional<Error> peer_address_refusal(const Member& m, const NodeStatus& status);

// The joiner check of add_member (on the leader, after the guard above): a
// member added with an explicit peer address has announced nothing yet, so
// the leader asks the node at that address, over the peer channel, who it is
// and what its build implements (PeerChannel::ask_build, whose answer or
// error is `answer`). A build that predates the question cannot listen at an
// explicit peer address (it listens on the Raft port + 1 only) and does not
// answer it, so silence, a refused handshake or a closed connection all mean
// "cannot confirm". Nothing when the node there is member `m` and implements
// kPeerAddressFormat; else failed_precondition naming what was found.
std::optional<Error> joiner_refusal(const Member& m, const Result<peer::BuildInfo>& answer);

// The address checks of ClusterOptions::validate() for one member, as for a
// member added at runtime: `field` names it in the error (invalid_argument).
Result<void> check_member_addresses(const std::string& field, const Member& m, bool allow_port_zero = false);

}  // namespace catga::internal
