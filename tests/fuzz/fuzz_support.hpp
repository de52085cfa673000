// Shared by every fuzz target (tests/fuzz/fuzz_*.cc): the list of targets,
// a check that aborts with a message (so libFuzzer records the input and the
// g++ regression test reports which corpus file broke), and a reader that
// turns fuzz bytes into structured values.
//
// A target is a plain function `int fuzz_<name>(const std::uint8_t*, std::size_t)`
// compiled into both builds: the clang fuzz build wraps it in
// LLVMFuzzerTestOneInput (fuzz_main.cc), the normal build replays the corpus
// through it (regression_test.cc).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

// X(name): one line per target; tests/fuzz/corpus/<name>/ is its corpus.
#define CATGA_FUZZ_CLUSTER_TARGETS(X) \
  X(envelope)                         \
  X(entry_batch)                      \
  X(snapshot_envelope)                \
  X(peer_handshake)                   \
  X(peer_message)                     \
  X(raft_handshake)                   \
  X(session_table)                    \
  X(state_restore)                    \
  X(tls_identity)
#define CATGA_FUZZ_HTTP_TARGETS(X) X(json_to_msgpack)

#define CATGA_FUZZ_DECLARE(name) int fuzz_##name(const std::uint8_t* data, std::size_t size);
namespace catga::fuzz {
CATGA_FUZZ_CLUSTER_TARGETS(CATGA_FUZZ_DECLARE)
CATGA_FUZZ_HTTP_TARGETS(CATGA_FUZZ_DECLARE)

// Prints what failed (and the corpus file being replayed, if any), then aborts.
[[noreturn]] void fail(const char* condition, const char* file, int line);
// Set by the regression test while it replays a file.
void set_current_input(std::string name);

// Reads structured values from fuzz bytes; past the end everything reads as 0/empty.
class FuzzInput {
 public:
  FuzzInput(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  std::uint64_t u64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{byte()} << (8 * i);
    return v;
  }
  // A small integer in [0, bound).
  std::size_t below(std::size_t bound) { return bound == 0 ? 0 : byte() % bound; }
  // Up to `max` bytes, length taken from two bytes of input.
  std::string bytes(std::size_t max) {
    std::size_t n = (std::size_t{byte()} | (std::size_t{byte()} << 8)) % (max + 1);
    n = std::min(n, size_ - std::min(pos_, size_));
    std::string out(reinterpret_cast<const char*>(data_) + std::min(pos_, size_), n);
    pos_ += n;
    return out;
  }
  std::string rest() {
    std::string out;
    if (pos_ < size_) out.assign(reinterpret_cast<const char*>(data_) + pos_, size_ - pos_);
    pos_ = size_;
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

inline std::string_view as_view(const std::uint8_t* data, std::size_t size) {
  return size == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char*>(data), size);
}

// Does `part` point inside `whole` (zero-copy decoders return views)?
inline bool points_into(std::string_view whole, std::string_view part) {
  if (part.empty()) return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace catga::fuzz

#define FUZZ_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) ::catga::fuzz::fail(#cond, __FILE__, __LINE__);           \
  } while (0)
