#include "cluster/session_table.hpp"

#include <algorithm>
#include <vector>

#include "catga/codec.hpp"
#include "catga/detail/mediator.hpp"

namespace catga::internal {
namespace {

constexpr std::int64_t kSweepEveryMs = 1000;

std::string error_result(Code code, std::string message) {
  std::string out;
  detail::encode_error_result(out, Error{code, std::move(message)});
  return out;
}

}  // namespace

std::uint64_t SessionTable::open(std::uint64_t index, std::uint32_t position, std::int64_t now_ms) {
  advance(now_ms);
  // Unique and identical on every node: where the open record sits in the log.
  const std::uint64_t id = (index << 16) | (position & 0xffff);
  sessions_[id] = Session{.last_active_ms = now_ms_, .floor = 0, .results = {}};
  evict_sessions_over_bound();
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
  if (it == sessions_.end()) {
    return {Verdict::Action::answer,
            error_result(Code::deadline_exceeded, "client session expired; the outcome of this command is unknown")};
  }
  Session& s = it->second;
  s.last_active_ms = now_ms_;
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
  return {};
}

void SessionTable::record(std::uint64_t session, std::uint64_t sequence, std::string_view key, std::string_view result,
                          std::int64_t now_ms) {
  advance(now_ms);
  if (!key.empty()) {
    keys_.insert_or_assign(std::string(key), Key{.recorded_ms = now_ms_, .result = std::string(result)});
    evict_keys_over_bound();
  }
  if (session == 0) return;
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  auto& results = it->second.results;
  results.put(sequence, result);
  while (results.size() > kMaxResultsPerSession) results.forget_oldest();
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

void SessionTable::advance(std::int64_t now_ms) {
  // Leader clocks may disagree after a leader change: time never goes back.
  now_ms_ = std::max(now_ms_, now_ms);
  if (now_ms_ < next_sweep_ms_) return;
  next_sweep_ms_ = now_ms_ + kSweepEveryMs;
  std::erase_if(sessions_, [&](const auto& kv) { return now_ms_ - kv.second.last_active_ms > kSessionTtl.count(); });
  std::erase_if(keys_, [&](const auto& kv) { return now_ms_ - kv.second.recorded_ms > kKeyTtl.count(); });
}

void SessionTable::evict_sessions_over_bound() {
  if (sessions_.size() <= kMaxSessions) return;
  // Least recently active first; ties by id — the same choice on every node.
  auto victim = std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.last_active_ms, a.first) < std::pair(b.second.last_active_ms, b.first);
  });
  sessions_.erase(victim);
}

void SessionTable::evict_keys_over_bound() {
  if (keys_.size() <= kMaxKeys) return;
  auto victim = std::min_element(keys_.begin(), keys_.end(), [](const auto& a, const auto& b) {
    return std::pair(a.second.recorded_ms, std::string_view(a.first)) < std::pair(b.second.recorded_ms, std::string_view(b.first));
  });
  keys_.erase(victim);
}

// Encoding: [version, now_ms, next_sweep_ms,
//            [[id, last_active, floor, [[seq, result]...]]...],
//            [[key, recorded, result]...]]
std::string SessionTable::encode() const {
  std::string out;
  detail::StringSink sink{&out};
  msgpack::packer<detail::StringSink> p(sink);
  p.pack_array(5);
  p.pack(1u);
  p.pack(now_ms_);
  p.pack(next_sweep_ms_);
  p.pack_array(static_cast<std::uint32_t>(sessions_.size()));
  for (const auto& [id, s] : sessions_) {
    p.pack_array(4);
    p.pack(id);
    p.pack(s.last_active_ms);
    p.pack(s.floor);
    p.pack_array(static_cast<std::uint32_t>(s.results.size()));
    for (const auto& [seq, result] : s.results) {
      p.pack_array(2);
      p.pack(seq);
      p.pack_bin(static_cast<std::uint32_t>(result.size()));
      p.pack_bin_body(result.data(), static_cast<std::uint32_t>(result.size()));
    }
  }
  p.pack_array(static_cast<std::uint32_t>(keys_.size()));
  for (const auto& [key, k] : keys_) {
    p.pack_array(3);
    p.pack(key);
    p.pack(k.recorded_ms);
    p.pack_bin(static_cast<std::uint32_t>(k.result.size()));
    p.pack_bin_body(k.result.data(), static_cast<std::uint32_t>(k.result.size()));
  }
  return out;
}

Result<void> SessionTable::decode(std::string_view bytes) {
  detail::Unpacked handle;
  DecodeLimits limits{.max_bytes = SIZE_MAX, .max_array = SIZE_MAX, .max_map = 0, .max_str = SIZE_MAX,
                      .max_bin = SIZE_MAX, .max_depth = 8};
  if (auto r = detail::unpack_one(bytes, limits, handle); !r) return Error{Code::data_loss, "session table: " + r.error().message()};
  try {
    const msgpack::object& o = handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 5 || o.via.array.ptr[0].as<unsigned>() != 1) {
      return Error{Code::data_loss, "session table: unknown format"};
    }
    SessionTable t;
    const auto* f = o.via.array.ptr;
    if (f[3].type != msgpack::type::ARRAY || f[4].type != msgpack::type::ARRAY) {
      return Error{Code::data_loss, "session table: unknown format"};
    }
    t.now_ms_ = f[1].as<std::int64_t>();
    t.next_sweep_ms_ = f[2].as<std::int64_t>();
    for (std::uint32_t i = 0; i < f[3].via.array.size; ++i) {
      const msgpack::object& s = f[3].via.array.ptr[i];
      if (s.type != msgpack::type::ARRAY || s.via.array.size != 4 || s.via.array.ptr[3].type != msgpack::type::ARRAY) {
        return Error{Code::data_loss, "session table: bad session"};
      }
      const auto* sf = s.via.array.ptr;
      Session session{.last_active_ms = sf[1].as<std::int64_t>(), .floor = sf[2].as<std::uint64_t>(), .results = {}};
      for (std::uint32_t j = 0; j < sf[3].via.array.size; ++j) {
        const msgpack::object& r = sf[3].via.array.ptr[j];
        if (r.type != msgpack::type::ARRAY || r.via.array.size != 2 || r.via.array.ptr[1].type != msgpack::type::BIN) {
          return Error{Code::data_loss, "session table: bad result"};
        }
        const auto& bin = r.via.array.ptr[1].via.bin;
        session.results.put(r.via.array.ptr[0].as<std::uint64_t>(), std::string_view(bin.ptr, bin.size));
      }
      t.sessions_.emplace(sf[0].as<std::uint64_t>(), std::move(session));
    }
    for (std::uint32_t i = 0; i < f[4].via.array.size; ++i) {
      const msgpack::object& k = f[4].via.array.ptr[i];
      if (k.type != msgpack::type::ARRAY || k.via.array.size != 3 || k.via.array.ptr[2].type != msgpack::type::BIN) {
        return Error{Code::data_loss, "session table: bad key"};
      }
      const auto& bin = k.via.array.ptr[2].via.bin;
      t.keys_.emplace(k.via.array.ptr[0].as<std::string>(),
                      Key{.recorded_ms = k.via.array.ptr[1].as<std::int64_t>(), .result = std::string(bin.ptr, bin.size)});
    }
    *this = std::move(t);
    return {};
  } catch (const std::exception& e) {
    return Error{Code::data_loss, std::string("session table: ") + e.what()};
  }
}

}  // namespace catga::internal
