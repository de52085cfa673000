#include "cluster/wall_clock.hpp"

#include <atomic>

namespace catga::internal {
namespace {
std::atomic<std::int64_t> shift_ns{0};
}  // namespace

std::int64_t wall_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
             .count() +
         shift_ns.load(std::memory_order_relaxed);
}

void shift_wall_clock_for_test(std::chrono::nanoseconds by) {
  shift_ns.fetch_add(by.count(), std::memory_order_relaxed);
}

}  // namespace catga::internal
