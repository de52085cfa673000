// Fuzz target: catga::internal::unwrap_snapshot — the checksummed envelope
// around a snapshot read from disk or installed by the leader.
// Properties: no crash or UB; an accepted snapshot is exactly header + data as
// write_snapshot_header writes it (reserved bytes aside, which are not
// checked); data wrapped from the input unwraps to itself, and any single
// changed byte in the checked header fields or in the data is refused (CRC-32
// detects every error burst of at most 32 bits).
#include "cluster/entry_format.hpp"
#include "fuzz_support.hpp"

namespace catga::fuzz {

int fuzz_snapshot_envelope(const std::uint8_t* data, std::size_t size) {
  using namespace catga::internal;
  const std::string_view in = as_view(data, size);
  if (auto u = unwrap_snapshot(in)) {
    FUZZ_CHECK(points_into(in, *u));
    std::string rebuilt(kSnapshotHeaderBytes, '\0');
    write_snapshot_header(rebuilt.data(), *u);
    rebuilt.append(*u);
    std::string expected(in);
    for (std::size_t i : {5, 6, 7, 20, 21, 22, 23}) expected[i] = 0;
    FUZZ_CHECK(rebuilt == expected);
  } else {
    FUZZ_CHECK(u.error().code() == Code::data_loss || u.error().code() == Code::unimplemented);
  }

  // The input wrapped, then damaged at one byte.
  FuzzInput r(data, size);
  const std::size_t where = static_cast<std::size_t>(r.u64());
  const std::uint8_t flip = static_cast<std::uint8_t>(r.byte() | 1);  // never 0: always a change
  const std::string payload = r.rest();
  std::string wrapped(kSnapshotHeaderBytes, '\0');
  write_snapshot_header(wrapped.data(), payload);
  wrapped.append(payload);
  auto ok = unwrap_snapshot(wrapped);
  FUZZ_CHECK(ok.has_value() && *ok == payload);
  const std::size_t at = where % wrapped.size();
  const bool reserved = (at >= 5 && at < 8) || (at >= 20 && at < 24);
  wrapped[at] = static_cast<char>(wrapped[at] ^ static_cast<char>(flip));
  FUZZ_CHECK(unwrap_snapshot(wrapped).has_value() == reserved);
  return 0;
}

}  // namespace catga::fuzz
