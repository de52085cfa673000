// Waiter: blocks the calling thread until a callback delivers the value —
// the one wait helper behind every blocking form of a callback-style call in
// the library (Application::block_until_woken and so wait_for, backups to a
// file, the HTTP server's stop, the bounded waits of membership changes).
// set() may run on any thread; the waiter may be destroyed as soon as wait()
// returned (wait_until's: see there).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

#include "catga/detail/unique_function.hpp"

namespace catga::internal {

template <class T>
class Waiter {
 public:
  void set(T value) {
    // Notify under the lock: the waiting thread may destroy this object as
    // soon as it sees the value.
    std::unique_lock lock(mutex_);
    if (late_) {
      auto late = std::move(late_);
      lock.unlock();
      return late(std::move(value));
    }
    value_.emplace(std::move(value));
    cv_.notify_one();
  }
  T wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return value_.has_value(); });
    return std::move(*value_);
  }
  // Waits at most until `deadline`: the value, or nothing once the deadline
  // passed — then the value, when set, goes to `late` on the setting thread
  // instead (so the waiter must outlive set(): hold it in a shared_ptr).
  std::optional<T> wait_until(std::chrono::steady_clock::time_point deadline, detail::UniqueFunction<void(T)> late) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_until(lock, deadline, [&] { return value_.has_value(); })) {
      late_ = std::move(late);
      return std::nullopt;
    }
    return std::move(*value_);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<T> value_;
  detail::UniqueFunction<void(T)> late_;  // set once wait_until gave up
};

}  // namespace catga::internal
