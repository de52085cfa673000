// SessionTable: the exactly-once memory of the replicated state machine
// (Raft dissertation §6.3). It lives inside the replicated state: every node
// updates it identically while applying, and snapshots carry it.
//
// Client sessions. An Application opens a session through the log once; it
// then tags each command with (session, sequence) and with `floor`, the
// lowest sequence it still awaits. Applying a tagged command:
//   - unknown session (never opened, or expired)  → `deadline_exceeded`
//     ("session expired; outcome unknown"): the command is NOT applied, and
//     an earlier attempt may or may not have been;
//   - sequence already answered                   → the recorded result, the
//     handler does not run again;
//   - sequence below the floor                    → `failed_precondition`
//     (the client already has that answer; a stale duplicate);
//   - otherwise                                   → apply and record.
// Results below the floor are forgotten, so a session holds at most as many
// results as its client has commands in flight.
//
// Idempotency keys. A caller-supplied key (HTTP `Idempotency-Key`) maps to the
// first result recorded under it; later commands with the key get that result.
//
// Bounds (identical on every node, so they are constants, not options):
// sessions expire after `kSessionTtl` of leader-stamped time without a
// command, keys after `kKeyTtl`; at most `kMaxSessions` sessions and `kMaxKeys`
// keys are kept — past that the least recently used are evicted first.
//
// Thread-safety: none; the loop thread owns it (snapshots copy it there).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "catga/result.hpp"

namespace catga::internal {

class SessionTable {
 public:
  static constexpr std::chrono::milliseconds kSessionTtl = std::chrono::hours(1);
  static constexpr std::chrono::milliseconds kKeyTtl = std::chrono::hours(24);
  static constexpr std::size_t kMaxSessions = 65'536;
  static constexpr std::size_t kMaxKeys = 1'000'000;
  static constexpr std::size_t kMaxResultsPerSession = 65'536;

  // What to do with a command about to be applied.
  struct Verdict {
    enum class Action { apply, answer } action = Action::apply;
    std::string answer;  // an encoded result, when action == answer
  };

  // Opens a session at leader time `now_ms`; returns its id (never 0).
  std::uint64_t open(std::uint64_t index, std::uint32_t position, std::int64_t now_ms);

  // Decides for a command tagged (session, sequence, floor) and/or key.
  // session == 0 means untagged. Moves time forward and expires idle entries.
  Verdict check(std::uint64_t session, std::uint64_t sequence, std::uint64_t floor, std::string_view key,
                std::int64_t now_ms);
  // Records the result of a command that `check` said to apply.
  void record(std::uint64_t session, std::uint64_t sequence, std::string_view key, std::string_view result,
              std::int64_t now_ms);

  std::size_t sessions() const { return sessions_.size(); }
  std::size_t keys() const { return keys_.size(); }

  std::string encode() const;
  Result<void> decode(std::string_view bytes);

  friend bool operator==(const SessionTable&, const SessionTable&) = default;

 private:
  // A session's recorded results, sorted by sequence. Sequences arrive
  // nearly in order and leave from the front (the floor rises), so a deque
  // beats a tree: no allocation per command.
  class Results {
   public:
    using Entry = std::pair<std::uint64_t, std::string>;  // sequence, encoded result
    const std::string* find(std::uint64_t sequence) const;
    void put(std::uint64_t sequence, std::string_view result);
    void forget_below(std::uint64_t floor);
    void forget_oldest() { entries_.pop_front(); }
    std::size_t size() const { return entries_.size(); }
    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }
    friend bool operator==(const Results&, const Results&) = default;

   private:
    std::deque<Entry> entries_;
  };

  struct Session {
    std::int64_t last_active_ms = 0;
    std::uint64_t floor = 0;
    Results results;
    friend bool operator==(const Session&, const Session&) = default;
  };
  struct Key {
    std::int64_t recorded_ms = 0;
    std::string result;
    friend bool operator==(const Key&, const Key&) = default;
  };

  void advance(std::int64_t now_ms);
  void evict_sessions_over_bound();
  void evict_keys_over_bound();

  std::int64_t now_ms_ = 0;            // monotonic leader time seen so far
  std::int64_t next_sweep_ms_ = 0;
  std::map<std::uint64_t, Session> sessions_;  // ordered: identical iteration everywhere
  std::map<std::string, Key, std::less<>> keys_;
};

}  // namespace catga::internal
