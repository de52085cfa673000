// Waiter: blocks the calling thread until a callback delivers the value —
// the one wait helper behind every blocking form of a callback-style call in
// the library (Application::block_until_woken and so wait_for, backups to a
// file, the HTTP server's stop). set() may run on any thread; the waiter may
// be destroyed as soon as wait() returned.
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
