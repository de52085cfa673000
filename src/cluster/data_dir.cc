#include "cluster/data_dir.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <system_error>
#include <tuple>

#include "cluster/data_dir_marker.hpp"

namespace catga::internal {

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kProbeName = ".catga-write-probe";

bool parse_snapshot_name(const std::string& name, bool meta, SnapshotFile& out, unsigned long long& ts) {
  unsigned long long term = 0, index = 0;
  int consumed = 0;
  const char* pattern = meta ? "snapshot-%llu-%llu-%llu.meta%n" : "snapshot-%llu-%llu-%llu%n";
  if (std::sscanf(name.c_str(), pattern, &term, &index, &ts, &consumed) != 3 ||
      static_cast<std::size_t>(consumed) != name.size()) {
    return false;
  }
  out.term = term;
  out.index = index;
  return true;
}
}  // namespace

std::uint64_t free_bytes(const fs::path& dir) {
  struct statvfs s {};
  if (::statvfs(dir.c_str(), &s) != 0) return 0;
  return static_cast<std::uint64_t>(s.f_bavail) * s.f_frsize;
}

std::string mib(std::uint64_t bytes) {
  char out[32];
  std::snprintf(out, sizeof out, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return out;
}

std::string hex32(std::uint32_t value) {
  char out[16];
  std::snprintf(out, sizeof out, "%08x", value);
  return out;
}

int write_probe(const fs::path& dir) {
  const fs::path probe = dir / kProbeName;
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  int err = 0;
  if (::write(fd, "probe", 5) != 5 || ::fsync(fd) != 0) err = errno != 0 ? errno : EIO;
  ::close(fd);
  ::unlink(probe.c_str());
  return err;
}

bool out_of_space(int err) { return err == ENOSPC || err == EDQUOT; }

Result<void> prepare_data_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Error(Code::invalid_argument, "data_dir: cannot create " + dir.string() + ": " + ec.message());
  }
  if (!fs::is_directory(dir, ec)) {
    return Error(Code::invalid_argument, "data_dir: " + dir.string() + " is not a directory");
  }
  if (const int err = write_probe(dir); err != 0) {
    return Error(Code::invalid_argument, "data_dir: " + dir.string() + " is not writable: " + std::strerror(err));
  }
  if (const std::uint64_t free = free_bytes(dir); free < kMinFreeBytes) {
    return Error(Code::resource_exhausted, "data_dir: " + dir.string() + " has " + mib(free) +
                                               " free; a Raft node needs at least " + mib(kMinFreeBytes) +
                                               " (libraft preallocates its log in 8 MiB segments): no space left on device");
  }
  (void)fs::directory_iterator(dir, ec);
  if (ec) return Error(Code::invalid_argument, "data_dir: cannot list " + dir.string() + ": " + ec.message());
  return {};
}

bool holds_raft_files(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // lost+found: a freshly formatted file system mounted as the data
    // directory itself is still empty.
    if (name == kProbeName || name == "lost+found" || is_marker_file_name(name)) continue;
    return true;
  }
  return false;
}

SnapshotFile newest_snapshot(const fs::path& dir) {
  std::error_code ec;
  SnapshotFile best;
  std::tuple<std::uint64_t, std::uint64_t, unsigned long long> best_key{0, 0, 0};
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    SnapshotFile found;
    unsigned long long ts = 0;
    if (!parse_snapshot_name(name, false, found, ts)) continue;
    if (!fs::exists(dir / (name + ".meta"), ec)) continue;  // being written, or half deleted
    auto key = std::make_tuple(found.term, found.index, ts);
    if (best.name.empty() || key > best_key) {
      best_key = key;
      found.name = name;
      best = found;
    }
  }
  return best;
}

Result<void> write_file_durably(const fs::path& dir, const std::string& name, std::string_view bytes) {
  const fs::path tmp = dir / (name + ".tmp");
  const fs::path final_path = dir / name;
  auto fail = [&](const std::string& what) {
    const int err = errno;
    return Error(Code::internal, what + " " + tmp.string() + ": " + std::strerror(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("cannot create");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      auto e = fail("cannot write");
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    auto e = fail("cannot fsync");
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    auto e = fail("cannot rename");
    ::unlink(tmp.c_str());
    return e;
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail("cannot open directory of");
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return fail("cannot fsync directory of");
  return {};
}

}  // namespace catga::internal
