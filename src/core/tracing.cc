#include "catga/tracing.hpp"

#include <algorithm>

namespace catga {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not allowed by W3C trace context
}

// Reads 2 * N lower-case hex digits.
template <std::size_t N>
bool read_hex(std::string_view text, std::array<std::uint8_t, N>& out) noexcept {
  if (text.size() != 2 * N) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& a) noexcept {
  return std::all_of(a.begin(), a.end(), [](std::uint8_t b) { return b == 0; });
}

template <std::size_t N>
void write_hex(std::string& out, const std::array<std::uint8_t, N>& a) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::uint8_t b : a) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
}

}  // namespace

bool TraceContext::valid() const noexcept { return !all_zero(trace_id) && !all_zero(span_id); }

std::optional<TraceContext> TraceContext::from_traceparent(std::string_view header) noexcept {
  // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
  constexpr std::size_t kLength = 55;
  if (header.size() < kLength) return std::nullopt;
  std::array<std::uint8_t, 1> version{}, flags{};
  TraceContext t;
  if (!read_hex(header.substr(0, 2), version) || version[0] == 0xff || header[2] != '-' ||
      !read_hex(header.substr(3, 32), t.trace_id) || header[35] != '-' ||
      !read_hex(header.substr(36, 16), t.span_id) || header[52] != '-' || !read_hex(header.substr(53, 2), flags)) {
    return std::nullopt;
  }
  // Version 00 is exactly 55 characters; a later version may append fields
  // after another '-'.
  if (header.size() > kLength && (version[0] == 0 || header[kLength] != '-')) return std::nullopt;
  t.flags = flags[0];
  if (!t.valid()) return std::nullopt;
  return t;
}

std::string TraceContext::traceparent() const {
  std::string out = "00-";
  out.reserve(55);
  write_hex(out, trace_id);
  out.push_back('-');
  write_hex(out, span_id);
  out.push_back('-');
  write_hex(out, std::array<std::uint8_t, 1>{flags});
  return out;
}

}  // namespace catga
