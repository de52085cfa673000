// Fuzz target: the authenticated Raft transport's handshake decoder
// (src/cluster/raft_auth.h, catga_auth_reader) — the first bytes any TCP
// client can send to a node's Raft port, and the answer a dialler reads.
// Input: one byte choosing the side and the chunk size, then the stream.
// Properties: no crash or UB; the reader never takes more than it asked for;
// frames come in protocol order and nothing after the last one or after a
// refusal is taken; the outcome does not depend on how the bytes are split;
// an accepted identity is what the bytes say (protocol 1, id != 0, a
// printable NUL-terminated address with zero padding); a well-formed exchange
// built from the input decodes to the values it was built from; the MACs of
// the two directions differ.
#include <cstring>
#include <string>
#include <vector>

#include "cluster/raft_auth.h"
#include "fuzz_support.hpp"

namespace catga::fuzz {
namespace {

struct Outcome {
  std::vector<int> frames;
  std::size_t taken = 0;
  catga_auth_reader reader{};
};

// Feeds `in` in chunks of `chunk` bytes (0: all at once).
Outcome feed(int side, const std::string& in, std::size_t chunk) {
  Outcome o;
  catga_auth_reader_init(&o.reader, side);
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::size_t offered = chunk == 0 ? in.size() - pos : std::min(chunk, in.size() - pos);
    const std::size_t want = catga_auth_reader_want(&o.reader);
    std::size_t used = 0;
    const int frame =
        catga_auth_reader_feed(&o.reader, reinterpret_cast<const std::uint8_t*>(in.data()) + pos, offered, &used);
    FUZZ_CHECK(used <= offered && used <= want);
    pos += used;
    o.taken += used;
    if (frame != CATGA_AUTH_NONE) o.frames.push_back(frame);
    if (frame == CATGA_AUTH_BAD) {
      FUZZ_CHECK(o.reader.error != nullptr && catga_auth_reader_want(&o.reader) == 0);
      std::size_t again = 1;
      FUZZ_CHECK(catga_auth_reader_feed(&o.reader, reinterpret_cast<const std::uint8_t*>(in.data()), in.size(),
                                        &again) == CATGA_AUTH_BAD &&
                 again == 0);
      break;
    }
    if (used == 0) break;  // done: nothing more is taken
  }
  return o;
}

void check_order(int side, const std::vector<int>& frames) {
  const std::vector<int> listener = {CATGA_AUTH_GOT_IDENTITY, CATGA_AUTH_GOT_HELLO, CATGA_AUTH_GOT_PROOF};
  const std::vector<int> dialler = {CATGA_AUTH_GOT_CHALLENGE, CATGA_AUTH_GOT_WELCOME};
  const auto& order = side == CATGA_AUTH_LISTENER ? listener : dialler;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (frames[i] == CATGA_AUTH_BAD) {
      FUZZ_CHECK(i + 1 == frames.size());
    } else {
      FUZZ_CHECK(i < order.size() && frames[i] == order[i]);
    }
  }
}

void check_identity(const catga_auth_reader& r, const std::string& in) {
  FUZZ_CHECK(r.peer_id != 0 && in.size() >= CATGA_AUTH_PREAMBLE);
  std::uint64_t protocol = 0, id = 0;
  for (int i = 7; i >= 0; --i) {
    protocol = (protocol << 8) | static_cast<std::uint8_t>(in[static_cast<std::size_t>(i)]);
    id = (id << 8) | static_cast<std::uint8_t>(in[8 + static_cast<std::size_t>(i)]);
  }
  FUZZ_CHECK(protocol == 1 && id == r.peer_id);
  const std::size_t len = strnlen(r.peer_address, sizeof r.peer_address);
  FUZZ_CHECK(len > 0 && len < sizeof r.peer_address);
  for (std::size_t i = 0; i < len; ++i) FUZZ_CHECK(r.peer_address[i] > 0x20 && r.peer_address[i] < 0x7f);
  FUZZ_CHECK(in.compare(CATGA_AUTH_PREAMBLE, len, r.peer_address) == 0);
}

void put64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

int fuzz_raft_handshake(const std::uint8_t* data, std::size_t size) {
  FuzzInput r(data, size);
  const std::uint8_t mode = r.byte();
  const int side = (mode & 1) ? CATGA_AUTH_DIALLER : CATGA_AUTH_LISTENER;
  const std::size_t chunk = (mode >> 1) % 17;  // 0: whole, else 1..16 bytes
  const std::string in = r.rest();

  const Outcome split = feed(side, in, chunk);
  const Outcome whole = feed(side, in, 0);
  const Outcome bytewise = feed(side, in, 1);
  check_order(side, whole.frames);
  for (const Outcome* o : {&split, &bytewise}) {
    FUZZ_CHECK(o->frames == whole.frames && o->taken == whole.taken);
    FUZZ_CHECK(o->reader.peer_id == whole.reader.peer_id);
    FUZZ_CHECK(std::memcmp(o->reader.peer_nonce, whole.reader.peer_nonce, CATGA_AUTH_NONCE) == 0);
    FUZZ_CHECK(std::memcmp(o->reader.peer_mac, whole.reader.peer_mac, CATGA_AUTH_MAC) == 0);
  }
  if (side == CATGA_AUTH_LISTENER && !whole.frames.empty() && whole.frames[0] == CATGA_AUTH_GOT_IDENTITY) {
    check_identity(whole.reader, in);
  }

  // A well-formed listener-side stream built from the input.
  FuzzInput b(data, size);
  const std::uint64_t id = b.u64() | 1;
  std::string address = b.bytes(CATGA_AUTH_MAX_ADDRESS - 1);
  for (char& c : address) c = static_cast<char>('!' + static_cast<std::uint8_t>(c) % 94);
  if (address.empty()) address = "a";
  const std::size_t padded = (address.size() + 1 + 7) / 8 * 8;
  std::string good;
  put64(good, 1);
  put64(good, id);
  put64(good, padded);
  good += address;
  good.append(padded - address.size(), '\0');
  std::uint8_t nonce[CATGA_AUTH_NONCE] = {};
  std::uint8_t mac[CATGA_AUTH_MAC] = {};
  for (auto& x : nonce) x = b.byte();
  for (auto& x : mac) x = b.byte();
  good += "CATGAHI1";
  good.append(reinterpret_cast<const char*>(nonce), sizeof nonce);
  good.append(reinterpret_cast<const char*>(mac), sizeof mac);
  const Outcome built = feed(CATGA_AUTH_LISTENER, good + "trailing Raft traffic", chunk);
  const std::vector<int> expected = {CATGA_AUTH_GOT_IDENTITY, CATGA_AUTH_GOT_HELLO, CATGA_AUTH_GOT_PROOF};
  FUZZ_CHECK(built.frames == expected && built.taken == good.size());
  FUZZ_CHECK(built.reader.peer_id == id && address == built.reader.peer_address);
  FUZZ_CHECK(std::memcmp(built.reader.peer_nonce, nonce, sizeof nonce) == 0);
  FUZZ_CHECK(std::memcmp(built.reader.peer_mac, mac, sizeof mac) == 0);

  // The two directions' MACs over the same values differ.
  const std::string secret = b.bytes(64) + "k";
  std::uint8_t dialler[CATGA_AUTH_MAC], listener[CATGA_AUTH_MAC];
  FUZZ_CHECK(catga_auth_mac(secret.data(), secret.size(), "raft", 'D', "c", nonce, mac, id, id + 1, dialler) == 0);
  FUZZ_CHECK(catga_auth_mac(secret.data(), secret.size(), "raft", 'L', "c", nonce, mac, id, id + 1, listener) == 0);
  FUZZ_CHECK(!catga_auth_mac_equal(dialler, listener));
  return 0;
}

}  // namespace catga::fuzz
