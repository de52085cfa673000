// Fuzz target: the node identity a TLS certificate carries
// (src/cluster/tls_context.h, catga_tls_parse_node_name) — the subject
// common name of any certificate the cluster CA signed, the only bytes of a
// peer's certificate Catga itself decodes (OpenSSL parses the rest).
// Properties: no crash or UB, no read past `len`; an id is returned exactly
// when the bytes are "node-" and a canonical decimal (no sign, no leading
// zero, no NUL, at most UINT64_MAX), and it is that number; every id's
// canonical name parses back to it.
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>

#include "cluster/tls_context.h"
#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

// The reference decoder, written the obvious way.
std::uint64_t expected_id(const std::string& name) {
  if (name.rfind("node-", 0) != 0) return 0;
  const std::string digits = name.substr(5);
  if (digits.empty() || digits[0] == '0') return 0;
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size()) return 0;
  return id;
}

}  // namespace

int fuzz_tls_identity(const std::uint8_t* data, std::size_t size) {
  FuzzInput r(data, size);
  const std::uint64_t id = r.u64();
  const std::string name = r.rest();
  // An exact-size copy: a read past the end is a sanitizer report.
  std::string copy(name);
  const std::uint64_t got = catga_tls_parse_node_name(copy.data(), copy.size());
  FUZZ_CHECK(got == expected_id(name));
  if (id != 0) {
    const std::string canonical = "node-" + std::to_string(id);
    FUZZ_CHECK(catga_tls_parse_node_name(canonical.data(), canonical.size()) == id);
    // A trailing byte or a missing one changes the answer or refuses it.
    FUZZ_CHECK(catga_tls_parse_node_name((canonical + "x").data(), canonical.size() + 1) == 0);
  }
  return 0;
}

}  // namespace catga::fuzz
