#include "catga/result.hpp"

#include <array>

namespace catga {
namespace {
constexpr std::array<std::string_view, 17> kNames = {
    "ok",        "cancelled",         "unknown",          "invalid_argument", "deadline_exceeded", "not_found",
    "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted",
    "out_of_range", "unimplemented",  "internal",         "unavailable",      "data_loss",         "unauthenticated",
};
}  // namespace

std::string_view to_string(Code code) noexcept {
  auto i = static_cast<std::size_t>(code);
  return i < kNames.size() ? kNames[i] : std::string_view("code_unknown");
}

bool parse_code(std::string_view name, Code& out) noexcept {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      out = static_cast<Code>(i);
      return true;
    }
  }
  return false;
}

std::string Error::to_string() const {
  std::string s(catga::to_string(code_));
  if (!message_.empty()) {
    s += ": ";
    s += message_;
  }
  return s;
}

std::ostream& operator<<(std::ostream& os, const Error& error) { return os << error.to_string(); }

namespace internal {
void throw_bad_result_access(const Error& error) { throw BadResultAccess(error); }
}  // namespace internal

}  // namespace catga
