// Waiter: blocks the calling thread until a callback delivers the value
// (the blocking forms of callback-style calls inside the library).
#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

namespace catga::detail {

template <class T>
class Waiter {
 public:
  void set(T value) {
    // Notify under the lock: the waiting thread may destroy this object as
    // soon as it sees the value.
    std::lock_guard lock(mutex_);
    value_.emplace(std::move(value));
    cv_.notify_one();
  }
  T wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return value_.has_value(); });
    return std::move(*value_);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<T> value_;
};

}  // namespace catga::detail
