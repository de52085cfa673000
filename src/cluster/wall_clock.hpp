// The wall clock a leader stamps into the entries it packs (unix ns), and a
// test hook that shifts it — how tests make hours of leader time pass, or a
// leader's clock jump, in a second. Internal.
//
// Thread-safety: both functions may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace catga::internal {

// std::chrono::system_clock now, plus the shift set by tests (0 otherwise).
std::int64_t wall_clock_ns();
// Tests only: adds `by` to every later wall_clock_ns() in this process.
void shift_wall_clock_for_test(std::chrono::nanoseconds by);

}  // namespace catga::internal
