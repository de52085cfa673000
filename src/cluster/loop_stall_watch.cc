#include "cluster/loop_stall_watch.hpp"

#include <fstream>
#include <sstream>

namespace catga::internal {

LoopStallWatch::LoopStallWatch(pid_t loop_tid, Options options, std::function<void()> ping,
                               std::function<void(const Stall&)> report)
    : tid_(loop_tid), options_(options), ping_(std::move(ping)), report_(std::move(report)) {
  thread_ = std::thread([this] { run(); });
}

LoopStallWatch::~LoopStallWatch() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LoopStallWatch::turned() {
  if (!outstanding_.load(std::memory_order_acquire)) return;
  Stall stall;
  {
    std::lock_guard lock(mu_);
    if (!outstanding_.load(std::memory_order_relaxed)) return;
    outstanding_.store(false, std::memory_order_relaxed);
    stall.length = Clock::now() - pinged_at_;
    if (stall.length < options_.report_after) {
      seen_.clear();
      return;
    }
    stall.seen = describe(seen_);
    seen_.clear();
  }
  stalls_.fetch_add(1, std::memory_order_relaxed);
  if (stall.length.count() > longest_.load(std::memory_order_relaxed)) {
    longest_.store(stall.length.count(), std::memory_order_relaxed);
  }
  report_(stall);
}

void LoopStallWatch::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, options_.period, [this] { return stop_; });
    if (stop_) break;
    const auto now = Clock::now();
    if (!outstanding_.load(std::memory_order_relaxed)) {
      pinged_at_ = now;
      outstanding_.store(true, std::memory_order_release);
      lock.unlock();
      ping_();
      lock.lock();
    } else if (now - pinged_at_ >= options_.report_after) {
      lock.unlock();
      const std::string what = label(read_thread(tid_));
      lock.lock();
      if (outstanding_.load(std::memory_order_relaxed)) {
        seen_[what]++;
        readings_.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
}

LoopStallWatch::Reading LoopStallWatch::read_thread(pid_t tid) {
  Reading r;
  const std::string dir = "/proc/self/task/" + std::to_string(tid) + "/";
  std::ifstream stat(dir + "stat");
  std::string line;
  if (std::getline(stat, line)) {
    // pid (comm) S ...: the name may hold spaces and parentheses.
    const auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size()) r.state = line[close + 2];
  }
  std::ifstream wchan(dir + "wchan");
  std::getline(wchan, r.wchan);
  if (r.wchan == "0") r.wchan.clear();
  return r;
}

std::string LoopStallWatch::label(const Reading& r) {
  std::string what;
  switch (r.state) {
    case 'R': what = "running"; break;  // on a core, or waiting for one
    case 'D': what = "disk wait"; break;
    case 'S': what = "sleeping"; break;
    default: what = std::string("state ") + r.state; break;
  }
  if (!r.wchan.empty() && r.state != 'R') what += " in " + r.wchan;
  return what;
}

std::string LoopStallWatch::describe(const std::map<std::string, unsigned>& counts) {
  std::ostringstream out;
  bool first = true;
  for (const auto& [what, n] : counts) {
    if (!first) out << ", ";
    first = false;
    out << what << ' ' << n;
  }
  return out.str();
}

}  // namespace catga::internal
