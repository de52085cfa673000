#include "cluster/read_gate.hpp"

#include <vector>

namespace catga::internal {

void ReadGate::wake(std::span<Read> woken) {
  std::vector<Done> burst;
  for (Read& r : woken) {
    if (r.wakes_caller || !run_) {
      r.done({});
    } else {
      burst.push_back(std::move(r.done));
    }
  }
  if (burst.empty()) return;
  // One task for the lot: they run in turn on one thread, as one burst.
  run_([burst = std::move(burst)]() mutable {
    for (auto& done : burst) done({});
  });
}

bool ReadGate::wait(std::uint64_t index, Read read, bool engine_thread) {
  return wait_all(index, std::span<Read>(&read, 1), engine_thread);
}

bool ReadGate::wait(std::uint64_t index, std::vector<Read> reads, bool engine_thread) {
  return wait_all(index, reads, engine_thread);
}

bool ReadGate::wait_all(std::uint64_t index, std::span<Read> reads, bool engine_thread) {
  std::unique_lock lock(mu_);
  if (closed_) {
    Error why = closed_why_;
    lock.unlock();
    for (auto& r : reads) r.done(why);
    return false;
  }
  if (index <= applied_) {
    lock.unlock();
    if (engine_thread) {
      wake(reads);
      return false;
    }
    for (auto& r : reads) r.done({});
    return false;
  }
  for (auto& r : reads) waiters_.emplace(index, std::move(r));
  return true;
}

void ReadGate::advance(std::uint64_t applied) {
  std::vector<Read> woken;
  {
    std::lock_guard lock(mu_);
    if (applied <= applied_) return;
    applied_ = applied;
    auto end = waiters_.upper_bound(applied);
    for (auto it = waiters_.begin(); it != end; ++it) woken.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  wake(woken);
}

void ReadGate::expire(Clock::time_point now) {
  std::vector<Done> late;
  {
    std::lock_guard lock(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (now >= it->second.deadline) {
        late.push_back(std::move(it->second.done));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& done : late) {
    done(Error{Code::deadline_exceeded, "this node did not apply the requested index before the deadline"});
  }
}

void ReadGate::close(const Error& why) {
  std::multimap<std::uint64_t, Read> left;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    closed_why_ = why;
    left.swap(waiters_);
  }
  for (auto& [index, w] : left) w.done(why);
}

}  // namespace catga::internal
