#include "cluster/read_runner.hpp"

#include <pthread.h>

namespace catga::internal {

// What a burst holds back until its tasks have all run.
struct ReadRunner::Burst {
  const ReadRunner* runner;
  std::vector<Task> at_end;
};

thread_local ReadRunner::Burst* ReadRunner::current_burst_ = nullptr;

ReadRunner::ReadRunner(unsigned threads) {
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "catga-read");
      run();
    });
  }
}

ReadRunner::~ReadRunner() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) t.join();
}

void ReadRunner::post(Task task) {
  bool was_empty;
  {
    std::lock_guard lock(mu_);
    was_empty = tasks_.empty();
    tasks_.push_back(std::move(task));
  }
  // A thread that finds work takes all of it (run()), so one wake-up per
  // burst: the reads one apply or one barrier wakes are posted together.
  if (was_empty) ready_.notify_one();
}

bool ReadRunner::in_burst() const { return current_burst_ != nullptr && current_burst_->runner == this; }

bool ReadRunner::at_burst_end(Task& task) {
  if (!in_burst()) return false;
  current_burst_->at_end.push_back(std::move(task));
  return true;
}

void ReadRunner::run() {
  std::deque<Task> batch;
  Burst burst{this, {}};
  std::unique_lock lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, and nothing left to run
    batch.swap(tasks_);
    lock.unlock();
    current_burst_ = &burst;
    for (Task& task : batch) task();
    current_burst_ = nullptr;  // what runs now goes straight to the engine
    for (Task& task : burst.at_end) task();
    burst.at_end.clear();
    batch.clear();
    lock.lock();
  }
}

}  // namespace catga::internal
