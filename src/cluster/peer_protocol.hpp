// The peer channel's wire protocol: how a follower forwards commands to the
// leader and asks it for a read index.
//
// A connection carries frames: a 4-byte little-endian body length, then a
// MessagePack array. The client speaks first:
//   hello     ["catga-peer", version, cluster_id, nonce_d, node_id]
// when the server holds the cluster secret, both prove it (the secret never
// travels; MACs as in src/cluster/raft_auth.h, channel "peer"):
//   challenge ["challenge", nonce_l, mac_l, node_id]   (server proves first)
//   proof     ["proof", mac_d]
// then
//   welcome   ["welcome", version, node_id]     or   ["refused", reason] + close
// A client that holds the secret refuses a server that welcomes it without a
// challenge; nonces and MACs are 32-byte bins (an empty nonce: a client
// without the secret).
// then any number of pipelined requests, answered in any order by id:
//   forward   [1, id, [record, ...]]        → [2, id, [[code, bytes, index], ...]]
//   read      [3, id]                       → [4, id, code, index | message]
//   member    [5, id, node_id]              → [6, id, node_id, announced, identity, term, settled]
//   build     [7, id]                       → [8, id, node_id, min_format, max_format]
// `bytes` is the encoded result on success (code 0), else the error message.
// `member` asks what the peer knows of member `node_id` (MemberState below;
// the bootstrap guard's question, src/cluster/bootstrap_guard.hpp). A peer
// of an older build closes the connection on it, like on anything unknown.
// `build` asks the peer who it is and which apply formats its build
// implements (BuildInfo below; the leader's check of a member it is about to
// add with a peer address, member_address.hpp). A build that predates it
// closes the connection too: no answer means "cannot confirm".
// Anything else — garbage, an oversized frame, a wrong version — closes the
// connection; the node keeps serving others.
//
// Pure functions: no sockets here (see peer_channel.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "catga/result.hpp"

namespace catga::internal::peer {

inline constexpr std::string_view kMagic = "catga-peer";
inline constexpr unsigned kVersion = 2;  // 2: challenge-response replaced the secret in clear
inline constexpr std::size_t kNonceBytes = 32;
inline constexpr std::size_t kMacBytes = 32;
inline constexpr std::size_t kHeaderBytes = 4;

struct Hello {
  unsigned version = kVersion;
  std::string cluster_id;
  std::string nonce;  // kNonceBytes, or empty
  std::uint64_t node_id = 0;
};

struct Challenge {
  std::string nonce;  // kNonceBytes
  std::string mac;    // kMacBytes
  std::uint64_t node_id = 0;
};

struct Welcome {
  bool accepted = false;
  unsigned version = 0;
  std::uint64_t node_id = 0;
  std::string reason;  // when refused
};

// One record's outcome on the leader.
struct Outcome {
  Code code = Code::ok;
  std::string bytes;  // encoded result (ok) or error message
  std::uint64_t index = 0;
};

// What a peer knows of one member (the answer to `member`).
struct MemberState {
  std::uint64_t node_id = 0;
  bool announced = false;  // the member's announcement is in the peer's table
  std::string identity;    // its data directory's identity, if it announced one
  std::uint64_t term = 0;  // the peer's current term (1: never an election)
  // The peer knows a leader and has applied what it knows to be committed:
  // `announced` is what the cluster has committed, not a stale view.
  bool settled = false;
  friend bool operator==(const MemberState&, const MemberState&) = default;
};

// What a peer says of itself (the answer to `build`): its node id and the
// range of apply formats its build implements (announcement_table.hpp).
struct BuildInfo {
  std::uint64_t node_id = 0;
  std::uint32_t min_format = 0;
  std::uint32_t max_format = 0;
  friend bool operator==(const BuildInfo&, const BuildInfo&) = default;
};

enum class Type : unsigned {
  forward = 1,
  forwarded = 2,
  read = 3,
  read_index = 4,
  member = 5,
  member_state = 6,
  build = 7,
  build_info = 8
};

struct Message {
  Type type = Type::forward;
  std::uint64_t id = 0;
  std::vector<std::string> records;  // forward
  std::vector<Outcome> outcomes;     // forwarded
  Code code = Code::ok;              // read_index
  std::uint64_t index = 0;           // read_index
  std::string message;               // read_index error
  MemberState member;                // member (node_id only), member_state
  BuildInfo build;                   // build_info
};

// Appends one whole frame (header + body).
void append_hello(std::string& out, const Hello& hello);
void append_welcome(std::string& out, const Welcome& welcome);
void append_challenge(std::string& out, const Challenge& challenge);
void append_proof(std::string& out, std::string_view mac);
void append_message(std::string& out, const Message& message);

// The body length announced by a header; error if above `max_body`.
Result<std::size_t> body_length(std::string_view header, std::size_t max_body);

Result<Hello> decode_hello(std::string_view body);
Result<Welcome> decode_welcome(std::string_view body);
Result<Challenge> decode_challenge(std::string_view body);
// The MAC of a proof.
Result<std::string> decode_proof(std::string_view body);
Result<Message> decode_message(std::string_view body, std::size_t max_records);

}  // namespace catga::internal::peer
