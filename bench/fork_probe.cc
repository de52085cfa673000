// catga-fork-probe: the floor under a snapshot's loop-thread pause — how long
// fork() takes in a process holding N MiB of touched heap (what the kernel
// copies: page tables, with every page marked copy-on-write). The child
// _exits at once; the parent times fork() alone, several times, and prints
// the median and the maximum.
//
//   catga-fork-probe --mib 150 [--runs 9]
//
// --collapse measures the alternative to glibc's huge pages that a library
// could apply on its own (docs/performance.md, "Huge pages"): madvise
// MADV_HUGEPAGE + MADV_COLLAPSE over the heap, 2 MiB at a time, on a second
// thread while this one keeps faulting in fresh memory (as a growing state's
// loop thread does) and times each MiB; then one child lives while this
// process writes to every 97th block (a snapshot beside writes spread over the
// state), and the forks and the collapse are timed again.
#include <CLI/CLI.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1
#endif

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// The median and the maximum of `runs` forks whose child _exits at once.
std::pair<double, double> time_forks(int runs) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    ms.push_back(ms_since(t0));
    if (pid < 0) std::perror("fork"), std::exit(1);
    waitpid(pid, nullptr, 0);
  }
  return {median(ms), *std::max_element(ms.begin(), ms.end())};
}

long anon_huge_kib() {
  std::ifstream in("/proc/self/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("AnonHugePages:", 0) == 0) return std::stol(line.substr(14));
  }
  return -1;
}

// The anonymous private read-write mappings of at least 2 MiB: the heap.
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> heap_ranges() {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in, path);
    path.erase(0, path.find_first_not_of(' '));
    if (perms != "rw-p" || inode != "0" || !(path.empty() || path == "[heap]")) continue;
    const auto dash = range.find('-');
    const std::uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const std::uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (hi - lo >= (std::uintptr_t{2} << 20)) out.emplace_back(lo, hi);
  }
  return out;
}

// Collapses the heap 2 MiB at a time; returns each step's milliseconds.
std::vector<double> collapse_heap() {
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  std::vector<double> steps;
  for (auto [lo, hi] : heap_ranges()) {
    madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
    for (std::uintptr_t a = (lo + kHuge - 1) & ~(kHuge - 1); a + kHuge <= hi; a += kHuge) {
      const auto t0 = Clock::now();
      madvise(reinterpret_cast<void*>(a), kHuge, MADV_COLLAPSE);
      steps.push_back(ms_since(t0));
    }
  }
  return steps;
}

// Runs collapse_heap on a second thread while this one maps and touches
// fresh 1 MiB blocks, timing each; prints the figures.
void collapse_beside_faults() {
  std::atomic<bool> done{false};
  std::vector<double> steps;
  const auto t0 = Clock::now();
  std::thread collapser([&] {
    steps = collapse_heap();
    done = true;
  });
  std::vector<double> touch;
  std::vector<char*> mapped;
  while (!done) {
    const auto t1 = Clock::now();
    auto* p = static_cast<char*>(mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) std::perror("mmap"), std::exit(1);
    for (int i = 0; i < 256; ++i) p[i * 4096] = 1;
    touch.push_back(ms_since(t1));
    mapped.push_back(p);
    if (mapped.size() >= 64) {
      for (char* q : mapped) munmap(q, 1 << 20);
      mapped.clear();
    }
  }
  collapser.join();
  for (char* q : mapped) munmap(q, 1 << 20);
  const double total = ms_since(t0);
  std::sort(touch.begin(), touch.end());
  std::sort(steps.begin(), steps.end());
  std::printf("\"collapse_ms\":%.0f,\"collapse_steps\":%zu,\"collapse_step_ms_median\":%.2f,\"collapse_step_ms_max\":%.2f,"
              "\"touch_1mib_ms_median\":%.3f,\"touch_1mib_ms_p99\":%.3f,\"touch_1mib_ms_max\":%.3f,",
              total, steps.size(), median(steps), steps.empty() ? 0 : steps.back(), median(touch),
              touch[touch.size() * 99 / 100], touch.back());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"catga-fork-probe: fork() time with N MiB of touched heap"};
  std::size_t mib = 100;
  int runs = 9;
  cli.add_option("--mib", mib, "heap to allocate and touch")->check(CLI::Range(0, 1 << 20));
  cli.add_option("--runs", runs, "forks to time")->check(CLI::Range(1, 1000));
  bool collapse = false;
  cli.add_flag("--collapse", collapse, "also time MADV_COLLAPSE of the heap beside page faults, and after a child's writes");
  CLI11_PARSE(cli, argc, argv);
  // Many small blocks, as a std::map of objects would hold.
  std::vector<std::unique_ptr<char[]>> blocks;
  constexpr std::size_t kBlock = 256;
  for (std::size_t i = 0; i < (mib << 20) / kBlock; ++i) {
    blocks.emplace_back(new char[kBlock]);
    std::memset(blocks.back().get(), static_cast<int>(i), kBlock);
  }
  const auto [fork_median, fork_max] = time_forks(runs);
  std::printf("{\"heap_mib\":%zu,\"forks\":%d,\"fork_ms_median\":%.2f,\"fork_ms_max\":%.2f", mib, runs, fork_median,
              fork_max);
  if (!collapse) return std::printf("}\n"), 0;
  std::printf(",");
  collapse_beside_faults();
  const auto [collapsed_median, collapsed_max] = time_forks(runs);
  std::printf("\"anon_huge_mib\":%ld,\"collapsed_fork_ms_median\":%.2f,\"collapsed_fork_ms_max\":%.2f,", anon_huge_kib() >> 10,
              collapsed_median, collapsed_max);
  // One child holds the view while this process writes every 97th block.
  const pid_t holder = fork();
  if (holder == 0) {
    sleep(2);
    _exit(0);
  }
  for (std::size_t i = 0; i < blocks.size(); i += 97) blocks[i][0] ^= 1;
  waitpid(holder, nullptr, 0);
  const long huge_after_writes = anon_huge_kib() >> 10;
  const auto [written_median, written_max] = time_forks(runs);
  const auto t0 = Clock::now();
  collapse_heap();
  const double recollapse = ms_since(t0);
  const auto [again_median, again_max] = time_forks(runs);
  std::printf("\"anon_huge_mib_after_writes\":%ld,\"written_fork_ms_median\":%.2f,\"recollapse_ms\":%.0f,"
              "\"recollapsed_fork_ms_median\":%.2f}\n",
              huge_after_writes, written_median, recollapse, again_median);
  (void)written_max;
  (void)again_max;
}
