#include "cluster/read_runner.hpp"

#include <pthread.h>

namespace catga::internal {

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

void ReadRunner::run() {
  std::deque<Task> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, and nothing left to run
    batch.swap(tasks_);
    lock.unlock();
    for (Task& task : batch) task();
    batch.clear();
    lock.lock();
  }
}

}  // namespace catga::internal
