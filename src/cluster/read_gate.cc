#include "cluster/read_gate.hpp"

#include <vector>

namespace catga::internal {

void ReadGate::wake(std::vector<Done> ready) {
  if (ready.empty()) return;
  if (!run_) {
    for (auto& done : ready) done({});
    return;
  }
  // One task for the lot: they run in turn on one thread, as one burst.
  run_([ready = std::move(ready)]() mutable {
    for (auto& done : ready) done({});
  });
}

void ReadGate::wait(std::uint64_t index, Clock::time_point deadline, Done done, bool engine_thread) {
  std::vector<Read> one;
  one.push_back(Read{deadline, std::move(done)});
  wait(index, std::move(one), engine_thread);
}

void ReadGate::wait(std::uint64_t index, std::vector<Read> reads, bool engine_thread) {
  std::unique_lock lock(mu_);
  if (closed_) {
    Error why = closed_why_;
    lock.unlock();
    for (auto& r : reads) r.done(why);
    return;
  }
  if (index <= applied_) {
    lock.unlock();
    if (engine_thread) {
      std::vector<Done> ready;
      ready.reserve(reads.size());
      for (auto& r : reads) ready.push_back(std::move(r.done));
      return wake(std::move(ready));
    }
    for (auto& r : reads) r.done({});
    return;
  }
  for (auto& r : reads) waiters_.emplace(index, std::move(r));
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
  wake(std::move(ready));
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
