#include "cluster/session_table.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "catga/codec.hpp"
#include "core/mediator.hpp"
#include "core/log.hpp"

namespace catga::internal {
namespace {

std::string error_result(Code code, std::string message) {
  std::string out;
  detail::encode_error_result(out, Error{code, std::move(message)});
  return out;
}

}  // namespace

std::uint64_t SessionTable::open(std::uint64_t index, std::uint32_t position, std::int64_t now_ms) {
  advance(now_ms);
  if (position >= kMaxOpenPosition) return 0;
  // Unique and identical on every node: where the open record sits in the log
  // (positions stay below 2^16, see kMaxOpenPosition).
  const std::uint64_t id = (index << 16) | position;
  if (auto it = sessions_.find(id); it != sessions_.end()) {
    // Only a replayed or forged record can reopen an id: start it afresh.
    by_activity_.erase(it->second.in_order);
    sessions_.erase(it);
  }
  add_session(id, Session{.last_active_ms = now_ms_});
  while (sessions_.size() > kMaxSessions) pop_oldest_session();
  return id;
}

SessionTable::Verdict SessionTable::check(std::uint64_t session, std::uint64_t sequence, std::uint64_t floor,
                                          std::string_view key, std::int64_t now_ms) {
  advance(now_ms);
  if (!key.empty()) {
    if (auto it = keys_.find(key); it != keys_.end()) return {Verdict::Action::answer, it->second.result};
  }
  if (session == 0) return {};
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return {Verdict::Action::session_unknown, {}};
  touch(it);
  Session& s = it->second;
  if (floor > s.floor) {
    s.floor = floor;
    s.results.forget_below(floor);
  }
  if (const std::string* r = s.results.find(sequence)) return {Verdict::Action::answer, *r};
  if (sequence < s.floor) {
    return {Verdict::Action::answer,
            error_result(Code::failed_precondition, "command sequence " + std::to_string(sequence) +
                                                        " was already answered (stale duplicate)")};
  }
  if (sequence < s.forgotten_below) {
    return {Verdict::Action::answer,
            error_result(Code::deadline_exceeded,
                         "the result of command sequence " + std::to_string(sequence) + " was dropped (more than " +
                             std::to_string(kMaxResultsPerSession) +
                             " unanswered results in its client session); the outcome of this command is unknown")};
  }
  return {};
}

void SessionTable::record(std::uint64_t session, std::uint64_t sequence, std::string_view key, std::string_view result,
                          std::int64_t now_ms) {
  advance(now_ms);
  if (!key.empty() && keys_.find(key) == keys_.end()) {
    add_key(std::string(key), Key{.recorded_ms = now_ms_, .result = std::string(result)});
    // advance() expired every key past kKeyTtl: these go early, for space.
    while (keys_.size() > kMaxKeys) {
      last_early_key_age_ms_ = now_ms_ - by_recording_.front()->second.recorded_ms;
      ++keys_evicted_early_;
      pop_oldest_key();
    }
  }
  if (session == 0) return;
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  Session& s = it->second;
  s.results.put(sequence, result);
  while (s.results.size() > kMaxResultsPerSession) {
    // Remember what was dropped: a retry of it must not apply again.
    s.forgotten_below = std::max(s.forgotten_below, s.results.forget_oldest() + 1);
  }
}

SessionTable::Verdict SessionTable::keep_alive(std::uint64_t session, std::uint64_t floor, std::int64_t now_ms) {
  advance(now_ms);
  auto it = sessions_.find(session);
  if (session == 0 || it == sessions_.end()) return {Verdict::Action::session_unknown, {}};
  touch(it);
  if (floor > it->second.floor) {
    it->second.floor = floor;
    it->second.results.forget_below(floor);
  }
  return {};
}

namespace {
constexpr auto sequence_less = [](const auto& entry, std::uint64_t sequence) { return entry.first < sequence; };
}  // namespace

const std::string* SessionTable::Results::find(std::uint64_t sequence) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), sequence, sequence_less);
  return it != entries_.end() && it->first == sequence ? &it->second : nullptr;
}

void SessionTable::Results::put(std::uint64_t sequence, std::string_view result) {
  if (entries_.empty() || entries_.back().first < sequence) {
    entries_.emplace_back(sequence, result);
    return;
  }
  auto it = std::lower_bound(entries_.begin(), entries_.end(), sequence, sequence_less);
  if (it != entries_.end() && it->first == sequence) it->second.assign(result);
  else entries_.emplace(it, sequence, result);
}

void SessionTable::Results::forget_below(std::uint64_t floor) {
  while (!entries_.empty() && entries_.front().first < floor) entries_.pop_front();
}

std::uint64_t SessionTable::Results::forget_oldest() {
  const std::uint64_t sequence = entries_.front().first;
  entries_.pop_front();
  return sequence;
}

void SessionTable::advance(std::int64_t stamp_ms) {
  if (max_stamp_ms_ == 0) {
    // The first stamp ever: the table's clock starts there.
    now_ms_ = std::max(now_ms_, stamp_ms);
    max_stamp_ms_ = stamp_ms;
  } else if (stamp_ms > max_stamp_ms_) {
    std::int64_t step = stamp_ms - max_stamp_ms_;
    if (step > kMaxClockStep.count()) {
      internal::log().warn(
          "catga: a leader's time stamp is {} s ahead of the latest one seen (a clock jump, or an idle log); "
          "session and idempotency-key expiry count {} s (expiry may come late, never early)",
          step / 1000, kMaxClockStep.count() / 1000);
      step = kMaxClockStep.count();
    }
    now_ms_ += step;
    max_stamp_ms_ = stamp_ms;
  }
  // A stamp at or below the highest seen (a clock that went back, a new
  // leader whose clock is behind) does not move the table's time.
  while (!by_activity_.empty() &&
         now_ms_ - sessions_.find(by_activity_.front())->second.last_active_ms > kSessionTtl.count()) {
    pop_oldest_session();
  }
  while (!by_recording_.empty() && now_ms_ - by_recording_.front()->second.recorded_ms > kKeyTtl.count()) {
    pop_oldest_key();
  }
}

void SessionTable::touch(std::map<std::uint64_t, Session>::iterator it) {
  it->second.last_active_ms = now_ms_;
  by_activity_.splice(by_activity_.end(), by_activity_, it->second.in_order);
}

void SessionTable::add_session(std::uint64_t id, Session session) {
  auto [it, inserted] = sessions_.emplace(id, std::move(session));
  if (!inserted) return;
  it->second.in_order = by_activity_.insert(by_activity_.end(), id);
}

void SessionTable::add_key(std::string key, Key k) {
  auto [it, inserted] = keys_.emplace(std::move(key), std::move(k));
  if (inserted) by_recording_.push_back(it);
}

void SessionTable::pop_oldest_session() {
  sessions_.erase(by_activity_.front());
  by_activity_.pop_front();
  ++removed_;
}

void SessionTable::pop_oldest_key() {
  keys_.erase(by_recording_.front());
  by_recording_.pop_front();
  ++removed_;
}

// Encoding, format 2:
//   [2, now_ms, max_stamp_ms,
//    [[id, last_active, floor, forgotten_below, [[seq, result]...]]...],  least recently active first
//    [[key, recorded, result]...]]                                        oldest first
// Format 1 (read only): [1, now_ms, next_sweep_ms, [[id, last_active, floor,
// [[seq, result]...]]...] by id, [[key, recorded, result]...] by key]; its
// queues are rebuilt in the order format 1 evicted: (last_active, id) and
// (recorded, key).
std::string SessionTable::encode() const {
  std::string out;
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  auto pack_bin = [&](std::string_view bytes) {
    p.pack_bin(static_cast<std::uint32_t>(bytes.size()));
    p.pack_bin_body(bytes.data(), static_cast<std::uint32_t>(bytes.size()));
  };
  p.pack_array(5);
  p.pack(2u);
  p.pack(now_ms_);
  p.pack(max_stamp_ms_);
  p.pack_array(static_cast<std::uint32_t>(by_activity_.size()));
  for (const std::uint64_t id : by_activity_) {
    const Session& s = sessions_.find(id)->second;
    p.pack_array(5);
    p.pack(id);
    p.pack(s.last_active_ms);
    p.pack(s.floor);
    p.pack(s.forgotten_below);
    p.pack_array(static_cast<std::uint32_t>(s.results.size()));
    for (const auto& [seq, result] : s.results) {
      p.pack_array(2);
      p.pack(seq);
      pack_bin(result);
    }
  }
  p.pack_array(static_cast<std::uint32_t>(by_recording_.size()));
  for (const auto& it : by_recording_) {
    p.pack_array(3);
    p.pack(it->first);
    p.pack(it->second.recorded_ms);
    pack_bin(it->second.result);
  }
  return out;
}

namespace {
bool is_array(const msgpack::object& o, std::uint32_t size) {
  return o.type == msgpack::type::ARRAY && o.via.array.size == size;
}
std::string_view bin_of(const msgpack::object& o) {
  if (o.type != msgpack::type::BIN) throw std::runtime_error("expected bytes");
  return {o.via.bin.ptr, o.via.bin.size};
}
}  // namespace

Result<void> SessionTable::decode(std::string_view bytes) {
  detail::Unpacked handle;
  DecodeLimits limits{.max_bytes = SIZE_MAX, .max_array = SIZE_MAX, .max_map = 0, .max_str = SIZE_MAX,
                      .max_bin = SIZE_MAX, .max_depth = 8};
  if (auto r = detail::unpack_one(bytes, limits, handle); !r) return Error{Code::data_loss, "session table: " + r.error().message()};
  const auto bad = [](const char* what) { return Error{Code::data_loss, std::string("session table: ") + what}; };
  try {
    const msgpack::object& o = handle.get();
    if (!is_array(o, 5) || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER) return bad("unknown format");
    const std::uint64_t format = o.via.array.ptr[0].via.u64;
    if (format != 1 && format != 2) return bad("unknown format");
    const auto* f = o.via.array.ptr;
    if (f[3].type != msgpack::type::ARRAY || f[4].type != msgpack::type::ARRAY) return bad("unknown format");
    SessionTable t;
    t.now_ms_ = f[1].as<std::int64_t>();
    // Format 1 kept no highest stamp apart: its clock was the highest stamp.
    t.max_stamp_ms_ = format == 1 ? t.now_ms_ : f[2].as<std::int64_t>();
    const std::uint32_t session_fields = format == 1 ? 4 : 5;
    std::vector<std::pair<std::int64_t, std::uint64_t>> order;  // format 1: (last_active, id)
    for (std::uint32_t i = 0; i < f[3].via.array.size; ++i) {
      const msgpack::object& so = f[3].via.array.ptr[i];
      if (!is_array(so, session_fields) || so.via.array.ptr[session_fields - 1].type != msgpack::type::ARRAY) {
        return bad("bad session");
      }
      const auto* sf = so.via.array.ptr;
      Session session{.last_active_ms = sf[1].as<std::int64_t>(), .floor = sf[2].as<std::uint64_t>()};
      if (format == 2) session.forgotten_below = sf[3].as<std::uint64_t>();
      const auto& results = sf[session_fields - 1].via.array;
      for (std::uint32_t j = 0; j < results.size; ++j) {
        if (!is_array(results.ptr[j], 2)) return bad("bad result");
        session.results.put(results.ptr[j].via.array.ptr[0].as<std::uint64_t>(), bin_of(results.ptr[j].via.array.ptr[1]));
      }
      const auto id = sf[0].as<std::uint64_t>();
      if (t.sessions_.contains(id)) return bad("duplicate session");
      order.emplace_back(session.last_active_ms, id);
      t.add_session(id, std::move(session));
    }
    if (format == 1) {
      std::sort(order.begin(), order.end());
      t.by_activity_.clear();
      for (const auto& [last_active, id] : order) t.sessions_.find(id)->second.in_order = t.by_activity_.insert(t.by_activity_.end(), id);
    }
    for (std::uint32_t i = 0; i < f[4].via.array.size; ++i) {
      const msgpack::object& k = f[4].via.array.ptr[i];
      if (!is_array(k, 3)) return bad("bad key");
      auto key = k.via.array.ptr[0].as<std::string>();
      if (t.keys_.contains(key)) return bad("duplicate key");
      t.add_key(std::move(key), Key{.recorded_ms = k.via.array.ptr[1].as<std::int64_t>(),
                                    .result = std::string(bin_of(k.via.array.ptr[2]))});
    }
    if (format == 1) {
      std::stable_sort(t.by_recording_.begin(), t.by_recording_.end(), [](const auto& a, const auto& b) {
        return std::pair(a->second.recorded_ms, std::string_view(a->first)) <
               std::pair(b->second.recorded_ms, std::string_view(b->first));
      });
    }
    *this = std::move(t);
    return {};
  } catch (const std::exception& e) {
    return Error{Code::data_loss, std::string("session table: ") + e.what()};
  }
}

}  // namespace catga::internal
