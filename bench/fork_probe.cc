// catga-fork-probe: the floor under a snapshot's loop-thread pause — how long
// fork() takes in a process holding N MiB of touched heap (what the kernel
// copies: page tables, with every page marked copy-on-write). The child
// _exits at once; the parent times fork() alone, several times, and prints
// the median and the maximum.
//
//   catga-fork-probe --mib 150 [--runs 9]
#include <CLI/CLI.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

int main(int argc, char** argv) {
  CLI::App cli{"catga-fork-probe: fork() time with N MiB of touched heap"};
  std::size_t mib = 100;
  int runs = 9;
  cli.add_option("--mib", mib, "heap to allocate and touch")->check(CLI::Range(0, 1 << 20));
  cli.add_option("--runs", runs, "forks to time")->check(CLI::Range(1, 1000));
  CLI11_PARSE(cli, argc, argv);
  // Many small blocks, as a std::map of objects would hold.
  std::vector<std::unique_ptr<char[]>> blocks;
  constexpr std::size_t kBlock = 256;
  for (std::size_t i = 0; i < (mib << 20) / kBlock; ++i) {
    blocks.emplace_back(new char[kBlock]);
    std::memset(blocks.back().get(), static_cast<int>(i), kBlock);
  }
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    const auto t1 = std::chrono::steady_clock::now();
    if (pid < 0) return std::perror("fork"), 1;
    waitpid(pid, nullptr, 0);
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"heap_mib\":%zu,\"forks\":%d,\"fork_ms_median\":%.2f,\"fork_ms_max\":%.2f}\n", mib, runs,
              ms[ms.size() / 2], ms.back());
}
