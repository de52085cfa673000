// FlatReader: reads the scalars of a flat MessagePack layout in order — the
// envelope, the head of an encoded result — without allocating or throwing.
// It knows only the canonical forms msgpack-c writes (positive integers, str,
// bin, array headers); anything else makes a read return false, and the
// caller falls back to the general decoder, which explains what is wrong.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace catga::internal {

class FlatReader {
 public:
  explicit FlatReader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool at_end() const { return p_ == end_; }

  bool array(std::uint32_t& n) {
    if (p_ == end_) return false;
    const auto b = byte();
    if ((b & 0xf0) == 0x90) return ++p_, n = b & 0x0f, true;
    if (b == 0xdc) return big(1, 2, n);
    if (b == 0xdd) return big(1, 4, n);
    return false;
  }

  bool uint(std::uint64_t& v) {
    if (p_ == end_) return false;
    const auto b = byte();
    if (b <= 0x7f) return ++p_, v = b, true;
    switch (b) {
      case 0xcc: return big(1, 1, v);
      case 0xcd: return big(1, 2, v);
      case 0xce: return big(1, 4, v);
      case 0xcf: return big(1, 8, v);
      default: return false;
    }
  }

  bool str(std::string_view& v) {
    if (p_ == end_) return false;
    const auto b = byte();
    std::uint32_t n = 0;
    bool ok;
    if ((b & 0xe0) == 0xa0) ok = (++p_, n = b & 0x1f, true);
    else if (b == 0xd9) ok = big(1, 1, n);
    else if (b == 0xda) ok = big(1, 2, n);
    else if (b == 0xdb) ok = big(1, 4, n);
    else ok = false;
    return ok && take(n, v);
  }

  bool bin(std::string_view& v) {
    if (p_ == end_) return false;
    const auto b = byte();
    std::uint32_t n = 0;
    bool ok = b == 0xc4 ? big(1, 1, n) : b == 0xc5 ? big(1, 2, n) : b == 0xc6 ? big(1, 4, n) : false;
    return ok && take(n, v);
  }

 private:
  std::uint8_t byte() const { return static_cast<std::uint8_t>(*p_); }

  // A big-endian integer of `width` bytes after `skip` header bytes.
  template <class T>
  bool big(std::size_t skip, std::size_t width, T& out) {
    if (static_cast<std::size_t>(end_ - p_) < skip + width) return false;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<std::uint8_t>(p_[skip + i]);
    p_ += skip + width;
    out = static_cast<T>(v);
    return true;
  }

  bool take(std::uint32_t n, std::string_view& v) {
    if (static_cast<std::size_t>(end_ - p_) < n) return false;
    v = std::string_view(p_, n);
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
};

}  // namespace catga::internal
