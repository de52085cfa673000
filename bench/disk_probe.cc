// catga-disk-probe: how long one durable log write takes on this machine's
// disk, the way libraft writes its log (O_DIRECT, O_DSYNC, 4 KiB-aligned
// blocks, sequential), in two cases:
//
//   fresh      into blocks preallocated with posix_fallocate (what libraft
//              does with every log segment: the blocks are "unwritten", so
//              each first write also commits a metadata change)
//   rewritten  over blocks that were already written once
//
// One replicated command batch costs at least one such write on the leader and
// one on a follower, so this bounds the round trip of catga-bench (see
// docs/performance.md). Prints one JSON object per case.
//
//   catga-disk-probe [--dir DIR] [--writes N] [--blocks B]
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

struct Probe {
  std::string dir = std::filesystem::temp_directory_path().string();
  int writes = 1000;
  int blocks = 2;  // an 8 KiB write: 64 commands of ~120 bytes
};

constexpr std::size_t kBlock = 4096;

// Writes `p.writes` sequential writes of `p.blocks` blocks; returns the
// median time of one write in microseconds, or a negative number on error.
double median_write_us(const Probe& p, bool rewrite) {
  const std::string path = p.dir + "/catga-disk-probe." + std::to_string(::getpid());
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_DIRECT | O_DSYNC, 0600);
  if (fd < 0) return -1;
  const std::size_t bytes = kBlock * static_cast<std::size_t>(p.blocks);
  const auto total = static_cast<off_t>(bytes) * p.writes;
  void* buf = nullptr;
  bool ok = ::posix_memalign(&buf, kBlock, bytes) == 0;
  if (ok) {
    std::memset(buf, 0x5a, bytes);
    ok = ::posix_fallocate(fd, 0, total) == 0;
  }
  for (off_t off = 0; ok && rewrite && off < total; off += static_cast<off_t>(bytes)) {
    ok = ::pwrite(fd, buf, bytes, off) == static_cast<ssize_t>(bytes);
  }
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(p.writes));
  for (int i = 0; ok && i < p.writes; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ok = ::pwrite(fd, buf, bytes, static_cast<off_t>(bytes) * i) == static_cast<ssize_t>(bytes);
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
  }
  std::free(buf);
  ::close(fd);
  ::unlink(path.c_str());
  if (!ok || us.empty()) return -1;
  std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(us.size() / 2), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Probe p;
  CLI::App cli{"catga-disk-probe: latency of one O_DIRECT|O_DSYNC log write, fresh vs rewritten blocks"};
  cli.add_option("--dir", p.dir, "directory on the disk to probe (a data_dir's filesystem)");
  cli.add_option("--writes", p.writes, "writes per case")->check(CLI::Range(1, 1000000));
  cli.add_option("--blocks", p.blocks, "4 KiB blocks per write")->check(CLI::Range(1, 256));
  CLI11_PARSE(cli, argc, argv);
  for (const bool rewrite : {false, true}) {
    const double us = median_write_us(p, rewrite);
    if (us < 0) {
      std::fprintf(stderr, "catga-disk-probe: cannot write %s with O_DIRECT|O_DSYNC: %s\n", p.dir.c_str(),
                   std::strerror(errno));
      return 1;
    }
    std::printf("{\"probe\":\"dsync-write\",\"case\":\"%s\",\"bytes\":%zu,\"writes\":%d,\"p50_us\":%.1f}\n",
                rewrite ? "rewritten" : "fresh", kBlock * static_cast<std::size_t>(p.blocks), p.writes, us);
  }
  return 0;
}
