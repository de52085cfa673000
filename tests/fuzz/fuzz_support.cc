#include "fuzz_support.hpp"

#include <cstdio>
#include <cstdlib>

namespace catga::fuzz {
namespace {
std::string& current_input() {
  static std::string name;
  return name;
}
}  // namespace

void set_current_input(std::string name) { current_input() = std::move(name); }

void fail(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "fuzz check failed: %s\n  at %s:%d\n", condition, file, line);
  if (!current_input().empty()) std::fprintf(stderr, "  input: %s\n", current_input().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace catga::fuzz
