#include "cluster/read_gate.hpp"

#include <vector>

namespace catga::internal {

void ReadGate::wake(Done done) {
  if (!run_) return done({});
  run_([done = std::move(done)]() mutable { done({}); });
}

void ReadGate::wait(std::uint64_t index, Clock::time_point deadline, Done done, bool engine_thread) {
  std::unique_lock lock(mu_);
  if (closed_) {
    Error why = closed_why_;
    lock.unlock();
    return done(std::move(why));
  }
  if (index <= applied_) {
    lock.unlock();
    if (engine_thread) return wake(std::move(done));
    return done({});
  }
  waiters_.emplace(index, PendingRead{deadline, std::move(done)});
}

void ReadGate::advance(std::uint64_t applied) {
  std::vector<Done> ready;
  {
    std::lock_guard lock(mu_);
    if (applied <= applied_) return;
    applied_ = applied;
    auto end = waiters_.upper_bound(applied);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second.done));
    waiters_.erase(waiters_.begin(), end);
  }
  for (auto& done : ready) wake(std::move(done));
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
  std::multimap<std::uint64_t, PendingRead> left;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    closed_why_ = why;
    left.swap(waiters_);
  }
  for (auto& [index, w] : left) w.done(why);
}

}  // namespace catga::internal
