// libFuzzer entry point of one target (clang fuzz build only): CATGA_FUZZ_TARGET
// names the plain function, e.g. fuzz_envelope.
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return catga::fuzz::CATGA_FUZZ_TARGET(data, size);
}
