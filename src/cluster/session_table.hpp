// SessionTable: the exactly-once memory of the replicated state machine
// (Raft dissertation §6.3). It lives inside the replicated state: every node
// updates it identically while applying, and snapshots carry it.
//
// Client sessions. An Application opens a session through the log once; it
// then tags each command with (session, sequence) and with `floor`, the
// lowest sequence it still awaits. Applying a tagged command:
//   - unknown session (never opened, or expired)  → Action::session_unknown:
//     the command is NOT applied. The client tells from its own history
//     whether an earlier attempt may have applied (then the outcome is
//     unknown) or not (then it opens a new session and sends again);
//   - sequence already answered                   → the recorded result, the
//     handler does not run again;
//   - sequence below the floor                    → `failed_precondition`
//     (the client already has that answer; a stale duplicate);
//   - sequence below the session's "forgotten" mark (its result was dropped
//     because more than kMaxResultsPerSession results were unanswered)
//                                                 → `deadline_exceeded`
//     (outcome unknown), never a second apply;
//   - otherwise                                   → apply and record.
// Results below the floor are forgotten, so a session holds at most as many
// results as its client has commands in flight. A keep-alive record (sent by
// an idle client) only refreshes its session.
//
// Idempotency keys. A caller-supplied key (HTTP `Idempotency-Key`) maps to the
// first result recorded under it; later commands with the key get that result.
//
// Time. The table does not take a leader's stamp as its time: its clock moves
// by the amount the highest stamp seen so far grows, at most kMaxClockStep per
// entry (a warning is logged when that clips). A leader whose wall clock jumps
// a day ahead therefore moves the table's time by at most kMaxClockStep, once;
// a clock that goes back moves it not at all (no ordering breaks). Idle gaps
// longer than kMaxClockStep count as kMaxClockStep: expiry may come late,
// never early. Clients keep the log ticking with keep-alives (see
// kKeepAliveEvery) well inside that step.
//
// Bounds (identical on every node, so they are constants, not options):
// sessions expire after `kSessionTtl` of table time without a command, keys
// after `kKeyTtl`; at most `kMaxSessions` sessions and `kMaxKeys` keys are
// kept — past that the least recently used are evicted first. Expiry and
// eviction take from the front of an ordered queue (sessions by last activity,
// keys by recording), O(1) each, with no sweeps over the tables; the queue
// order is log order, which snapshots preserve.
//
// Thread-safety: none; the loop thread owns it. encode() is a pure read (no
// locks, no logging), so it may run in a forked child.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
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
  // The most one entry may move the table's time (see "Time" above).
  static constexpr std::chrono::milliseconds kMaxClockStep = std::chrono::minutes(2);
  // How long a client with a session stays silent before it sends a
  // keep-alive; well below both kMaxClockStep and kSessionTtl.
  static constexpr std::chrono::milliseconds kKeepAliveEvery = std::chrono::minutes(1);
  // Sessions are opened only by records at positions below this in their
  // entry (the leader packs at most this many records per entry), so that
  // the id (index << 16 | position) is unique.
  static constexpr std::uint32_t kMaxOpenPosition = 65'536;

  // What to do with a command about to be applied.
  struct Verdict {
    enum class Action { apply, answer, session_unknown } action = Action::apply;
    std::string answer;  // an encoded result, when action == answer
  };

  // Opens a session at leader time `now_ms`; returns its id, or 0 when
  // `position` >= kMaxOpenPosition (no session opened).
  std::uint64_t open(std::uint64_t index, std::uint32_t position, std::int64_t now_ms);

  // Decides for a command tagged (session, sequence, floor) and/or key.
  // session == 0 means untagged. Moves time forward and expires idle entries.
  Verdict check(std::uint64_t session, std::uint64_t sequence, std::uint64_t floor, std::string_view key,
                std::int64_t now_ms);
  // Records the result of a command that `check` said to apply. A key that
  // is already recorded keeps its first result.
  void record(std::uint64_t session, std::uint64_t sequence, std::string_view key, std::string_view result,
              std::int64_t now_ms);
  // A keep-alive: refreshes `session` (and raises its floor). Returns apply
  // (refreshed) or session_unknown.
  Verdict keep_alive(std::uint64_t session, std::uint64_t floor, std::int64_t now_ms);

  std::size_t sessions() const { return sessions_.size(); }
  std::size_t keys() const { return keys_.size(); }
  // The table's own clock (ms; see "Time").
  std::int64_t now_ms() const { return now_ms_; }
  // Items expired or evicted so far (a measure of work, for tests).
  std::uint64_t removed() const { return removed_; }
  // Keys evicted for space (kMaxKeys) before kKeyTtl: each one's retry would
  // no longer be recognised. `last_early_key_age_ms` is how long the last of
  // them had been kept — the de-duplication window the table offered then.
  // Not encoded (like removed()): what this node saw since it started.
  std::uint64_t keys_evicted_early() const { return keys_evicted_early_; }
  std::int64_t last_early_key_age_ms() const { return last_early_key_age_ms_; }

  // Format 2. decode() also reads format 1 (before the ordered queues).
  std::string encode() const;
  Result<void> decode(std::string_view bytes);

  SessionTable() = default;
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;
  SessionTable(SessionTable&&) = default;
  SessionTable& operator=(SessionTable&&) = default;

  // Equal when they encode to the same bytes (same contents, same order).
  friend bool operator==(const SessionTable& a, const SessionTable& b) { return a.encode() == b.encode(); }

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
    // Drops the lowest sequence; returns it.
    std::uint64_t forget_oldest();
    std::size_t size() const { return entries_.size(); }
    auto begin() const { return entries_.begin(); }
    auto end() const { return entries_.end(); }

   private:
    std::deque<Entry> entries_;
  };

  struct Session {
    std::int64_t last_active_ms = 0;
    std::uint64_t floor = 0;
    std::uint64_t forgotten_below = 0;  // results of sequences below this may have been dropped
    Results results;
    std::list<std::uint64_t>::iterator in_order;  // position in by_activity_
  };
  struct Key {
    std::int64_t recorded_ms = 0;
    std::string result;
  };
  using Keys = std::map<std::string, Key, std::less<>>;

  void advance(std::int64_t now_ms);
  void touch(std::map<std::uint64_t, Session>::iterator it);
  void add_session(std::uint64_t id, Session session);
  void add_key(std::string key, Key k);
  void pop_oldest_session();
  void pop_oldest_key();

  std::int64_t now_ms_ = 0;        // the table's clock: monotonic, moved by clipped stamp steps
  std::int64_t max_stamp_ms_ = 0;  // highest leader stamp seen (0: none yet)
  std::uint64_t removed_ = 0;      // not encoded
  std::uint64_t keys_evicted_early_ = 0;   // not encoded
  std::int64_t last_early_key_age_ms_ = 0;  // not encoded
  std::map<std::uint64_t, Session> sessions_;
  std::list<std::uint64_t> by_activity_;  // session ids, least recently active first
  Keys keys_;
  std::deque<Keys::iterator> by_recording_;  // oldest first
};

}  // namespace catga::internal
