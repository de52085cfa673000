// Fuzz target: catga::internal::SessionTable::decode — the exactly-once table
// read back from a snapshot on disk or from the leader.
// Properties: no crash or UB (including huge announced sizes); a decoded table
// encodes to bytes that decode to an equal table, and encoding is a fixed
// point; a table built by replaying operations from the input (open, check,
// record, time moving both ways) round-trips to an equal table that gives
// the same verdicts; a failed decode leaves the table unchanged.
#include <vector>

#include "cluster/session_table.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {

int fuzz_session_table(const std::uint8_t* data, std::size_t size) {
  using internal::SessionTable;
  const std::string_view in = as_view(data, size);
  SessionTable decoded;
  if (decoded.decode(in)) {
    const std::string bytes = decoded.encode();
    SessionTable again;
    FUZZ_CHECK(again.decode(bytes).has_value());
    FUZZ_CHECK(again == decoded);
    FUZZ_CHECK(again.encode() == bytes);
  } else {
    FUZZ_CHECK(decoded == SessionTable{});
  }

  // A table built from operations.
  FuzzInput r(data, size);
  SessionTable table;
  std::vector<std::uint64_t> opened;
  std::int64_t now = static_cast<std::int64_t>(r.below(4)) << 40;
  auto session = [&]() -> std::uint64_t {
    const std::size_t pick = r.below(opened.size() + 2);
    if (pick < opened.size()) return opened[pick];
    return pick == opened.size() ? 0 : r.u64();
  };
  for (int step = 0; step < 64 && !r.empty(); ++step) {
    // Leader time mostly moves forward, sometimes by more than a TTL, sometimes back.
    switch (r.below(8)) {
      case 0: now -= static_cast<std::int64_t>(r.below(5000)); break;
      case 1: now += SessionTable::kSessionTtl.count() + 1; break;
      default: now += static_cast<std::int64_t>(r.below(2000)); break;
    }
    switch (r.below(3)) {
      case 0:
        opened.push_back(table.open(1 + (r.u64() >> 17),  // Raft indexes start at 1
                                     static_cast<std::uint32_t>(r.below(4)), now));
        FUZZ_CHECK(opened.back() != 0);
        break;
      case 1: {
        const std::uint64_t s = session();
        const std::uint64_t seq = r.below(16);
        (void)table.check(s, seq, r.below(16), r.bytes(8), now);
        break;
      }
      default: {
        const std::uint64_t s = session();
        const std::uint64_t seq = r.below(16);
        const std::string key = r.bytes(8);
        table.record(s, seq, key, r.bytes(32), now);
        break;
      }
    }
  }
  const std::string bytes = table.encode();
  SessionTable copy;
  FUZZ_CHECK(copy.decode(bytes).has_value());
  FUZZ_CHECK(copy == table);
  FUZZ_CHECK(copy.encode() == bytes);
  // Same verdicts from the original and the copy.
  for (std::uint64_t s : opened) {
    for (std::uint64_t seq = 0; seq < 4; ++seq) {
      auto a = table.check(s, seq, 0, {}, now);
      auto b = copy.check(s, seq, 0, {}, now);
      FUZZ_CHECK(a.action == b.action && a.answer == b.answer);
    }
  }
  return 0;
}

}  // namespace catga::fuzz
