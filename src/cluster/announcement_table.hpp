// AnnouncementTable: what each member has announced, through the log, that it
// can apply — the wire names (with their kind) it has handlers for and the
// range of apply formats its build implements. It is part of the replicated
// state (carried in snapshots), so every node holds the same table at the same
// log index, and the rules below give the same answer on every node.
//
// Rules (docs/operations.md, "Rolling upgrades"; docs/guarantees.md):
//   * A command or event whose wire name some announced member lacks is
//     refused with failed_precondition, naming the member(s) — by the leader
//     before it appends, and again when the entry applies (every node records
//     the same refusal), so no member applies what another cannot.
//   * A member without an announcement does not block anything: it has not
//     caught up since its first start (every build that can join announces).
//     If it then meets an entry it cannot apply, it stops loudly.
//   * The cluster's apply format is raised by a record the leader appends once
//     every voter and standby has announced, to the highest format every
//     announced member implements; it never goes down. A node asked to apply
//     at a format outside its own range stops loudly.
//   * Removing a member withdraws its announcement (through the log).
//
// Pure: no I/O, no locks. Threading: the owner serialises access.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "catga/message.hpp"
#include "catga/result.hpp"

namespace catga::internal {

// The record a node writes to announce what it can apply (payload: an
// encoded Announcement).
inline constexpr std::string_view kAnnounceRecord = "catga.member.announce.v1";
// The record the leader writes to withdraw a removed member's announcement
// (payload: msgpack [format 1, node id]).
inline constexpr std::string_view kWithdrawRecord = "catga.member.withdraw.v1";

// The record the leader writes to raise the cluster's apply format (payload:
// msgpack [format 1, apply format]).
inline constexpr std::string_view kFormatRecord = "catga.format.raise.v1";

// The apply formats a build implements. An apply format names the semantics
// with which entries are applied (sessions, de-duplication, the records the
// state machine understands); a build that applies the same log differently
// must use another number.
struct FormatRange {
  std::uint32_t min = 1;
  std::uint32_t max = 1;
  bool contains(std::uint32_t f) const { return f >= min && f <= max; }
  friend bool operator==(const FormatRange&, const FormatRange&) = default;
};
// Apply format 2 adds a member's data directory identity to its announcement
// (an announcement of format 2, which a format-1 build cannot decode): a
// member announces it only once the cluster runs at format 2.
inline constexpr std::uint32_t kDataDirFormat = 2;
inline constexpr FormatRange kBuildFormats{1, 2};

struct Announcement {
  std::uint64_t node_id = 0;
  FormatRange formats = kBuildFormats;
  // Wire name -> kind, for every command and event this node has handlers for.
  std::map<std::string, MessageKind, std::less<>> handles;
  // The identity of the member's data directory (data_dir_marker.hpp: its
  // sentinel's), from apply format 2; "" before. Encoded as an announcement
  // of format 2 when set, of format 1 otherwise.
  std::string data_dir;

  friend bool operator==(const Announcement&, const Announcement&) = default;
};

std::string encode_announcement(const Announcement& a);
Result<Announcement> decode_announcement(std::string_view bytes);
// msgpack [1, number]: the payload of a withdrawal (a node id) or of a
// format raise (an apply format).
std::string encode_number_record(std::uint64_t number);
Result<std::uint64_t> decode_number_record(std::string_view bytes);

class AnnouncementTable {
 public:
  // Records (or replaces) a member's announcement.
  void announce(Announcement a);
  // Forgets a member's announcement (it was removed). False if it had none.
  bool withdraw(std::uint64_t node_id);

  const Announcement* find(std::uint64_t node_id) const;
  std::vector<std::uint64_t> members() const;
  bool empty() const { return by_node_.empty(); }

  // The refusal for a command or event named `wire_name`, if some announced
  // member — or `also_lacking` (a node that knows it lacks the handler: the
  // leader, asked by a member that handles it) — lacks a handler for it:
  // failed_precondition naming them (an upgrade in progress), or
  // unimplemented when no announced member handles it and `also_lacking` is
  // not given. O(1) when every member handles it.
  std::optional<Error> refusal(std::string_view wire_name, MessageKind kind,
                               std::optional<std::uint64_t> also_lacking = std::nullopt) const;
  // The announced members lacking `wire_name` (ascending ids).
  std::vector<std::uint64_t> lacking(std::string_view wire_name, MessageKind kind) const;

  // The apply format the cluster uses (1 until raise_format()).
  std::uint32_t format() const { return format_; }
  // The highest format every announced member implements (at least format()).
  std::uint32_t agreed_format() const;
  // Moves the cluster to apply format `f` (no-op if not higher than now):
  // failed_precondition unless every announced member implements it.
  Result<void> raise_format(std::uint32_t f);

  // Encoding for snapshots: msgpack [1, format, [announcement bytes...]].
  std::string encode() const;
  Result<void> decode(std::string_view bytes);

 private:
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // Recomputes handled_by_all_ after a change.
  void changed();

  std::map<std::uint64_t, Announcement> by_node_;
  std::uint32_t format_ = 1;
  // The handlers every announced member has (the fast path of refusal()).
  std::unordered_map<std::string, MessageKind, NameHash, std::equal_to<>> handled_by_all_;
};

// "command orders.cancel.v1" — for messages.
std::string describe_message(std::string_view wire_name, MessageKind kind);

}  // namespace catga::internal
