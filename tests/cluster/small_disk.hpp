// A small, real filesystem for disk-fault tests: an ext4 image in a temporary
// directory, loop-mounted for the lifetime of the object (needs root and
// CAP_SYS_ADMIN; tests GTEST_SKIP when create() says why it cannot).
//
// Why ext4 on a loop device rather than tmpfs: it is what a node's disk is —
// libraft probes O_DIRECT and gets it (tmpfs supports O_DIRECT only since Linux
// 6.6, so older kernels would run a different libraft write path), fallocate
// reserves real blocks, writes are journalled, and ENOSPC / EROFS / EIO come
// from the same kernel code as on a production disk.
//
// Every mount made here is undone by the destructor (lazily if busy), so a
// failing test leaves nothing mounted behind.
#pragma once

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "support/cluster.hpp"

#ifndef FS_IOC_SHUTDOWN
#define FS_IOC_SHUTDOWN _IOR('X', 125, std::uint32_t)
#endif

namespace catga::testing {

class SmallDisk {
 public:
  // A fresh ext4 filesystem of `mib` MiB mounted at path(); nullptr and `why`
  // when this machine cannot do it (not root, no loop devices, no mkfs.ext4).
  static std::unique_ptr<SmallDisk> create(unsigned mib, std::string& why) {
    if (::geteuid() != 0) {
      why = "needs root to mount a size-limited filesystem (running as uid " + std::to_string(::geteuid()) + ")";
      return nullptr;
    }
    std::unique_ptr<SmallDisk> d(new SmallDisk);
    d->image_ = d->tmp_.path() / "disk.img";
    d->mnt_ = d->tmp_.path() / "mnt";
    std::filesystem::create_directories(d->mnt_);
    {
      std::ofstream img(d->image_, std::ios::binary);
    }
    std::filesystem::resize_file(d->image_, std::uintmax_t{mib} << 20);
    // -m 0: no blocks reserved for root, so root (CI) sees the same free space as anyone.
    if (!d->run("mkfs.ext4 -q -F -m 0 " + d->image_.string(), why)) return nullptr;
    if (!d->mount(why)) return nullptr;
    return d;
  }

  ~SmallDisk() {
    unprotect();
    if (mounted_ && ::umount(mnt_.c_str()) != 0) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::filesystem::path& path() const { return mnt_; }

  std::uint64_t free_bytes() const {
    struct statvfs s {};
    if (::statvfs(mnt_.c_str(), &s) != 0) return 0;
    return static_cast<std::uint64_t>(s.f_bavail) * s.f_frsize;
  }

  // Takes up free space with a ballast file until only about `leave` bytes are
  // free (0: until the filesystem answers ENOSPC). Returns the bytes taken.
  std::uint64_t fill(std::uint64_t leave = 0) {
    const auto ballast = mnt_ / ("ballast-" + std::to_string(ballasts_++));
    const int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 0;
    std::uint64_t taken = 0;
    const std::uint64_t free = free_bytes();
    if (free > leave) {
      const auto want = static_cast<off_t>((free - leave) & ~std::uint64_t{4095});
      if (want > 0 && ::posix_fallocate(fd, 0, want) == 0) taken = static_cast<std::uint64_t>(want);
    }
    if (leave == 0) {
      // Whatever fallocate left (metadata, rounding): write until ENOSPC.
      std::vector<char> block(4096, 'B');
      ::lseek(fd, static_cast<off_t>(taken), SEEK_SET);
      while (::write(fd, block.data(), block.size()) > 0) taken += block.size();
    }
    ::fsync(fd);
    ::close(fd);
    return taken;
  }
  // Removes every ballast file.
  void free_space() {
    for (unsigned i = 0; i < ballasts_; ++i) {
      std::error_code ec;
      std::filesystem::remove(mnt_ / ("ballast-" + std::to_string(i)), ec);
    }
    ::sync();
  }

  // Makes `dir` (inside the filesystem) read-only for new opens, creations,
  // renames and deletions, with a read-only bind mount over it: files already
  // open for writing stay writable, as after a permission change. (A plain
  // `mount -o remount,ro` is refused with EBUSY while a node holds its log
  // segments open for writing.)
  bool protect(const std::filesystem::path& dir, std::string& why) {
    if (::mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      why = "bind mount " + dir.string() + ": " + std::strerror(errno);
      return false;
    }
    protected_.push_back(dir);
    if (::mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
      why = "read-only remount of " + dir.string() + ": " + std::strerror(errno);
      return false;
    }
    return true;
  }
  void unprotect() {
    for (auto it = protected_.rbegin(); it != protected_.rend(); ++it) {
      if (::umount(it->c_str()) != 0) ::umount2(it->c_str(), MNT_DETACH);
    }
    protected_.clear();
  }

  // Plain read-only remount of the whole filesystem (EBUSY while any file on
  // it is open for writing).
  bool remount_read_only(bool ro, std::string& why) {
    const unsigned long flags = MS_REMOUNT | (ro ? MS_RDONLY : 0);
    if (::mount(nullptr, mnt_.c_str(), nullptr, flags, nullptr) != 0) {
      why = std::string(ro ? "remount,ro: " : "remount,rw: ") + std::strerror(errno);
      return false;
    }
    return true;
  }

  // The filesystem stops, as if its disk died: every later read and write on
  // it, through files already open too, fails with EIO (FS_IOC_SHUTDOWN,
  // without flushing the log). What was fsync'ed before stays on the image.
  bool shut_down(std::string& why) {
    const int fd = ::open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
      why = std::string("open: ") + std::strerror(errno);
      return false;
    }
    std::uint32_t flags = 2;  // FSOP_GOING_FLAGS_NOLOGFLUSH
    const int rc = ::ioctl(fd, FS_IOC_SHUTDOWN, &flags);
    const int err = errno;
    ::close(fd);
    if (rc != 0) why = std::string("FS_IOC_SHUTDOWN: ") + std::strerror(err);
    return rc == 0;
  }

  // Unmounts and mounts the image again (after shut_down: replays the journal).
  bool remount(std::string& why) {
    unprotect();
    if (mounted_ && ::umount(mnt_.c_str()) != 0) {
      why = std::string("umount: ") + std::strerror(errno);
      return false;
    }
    mounted_ = false;
    return mount(why);
  }

 private:
  SmallDisk() = default;

  bool mount(std::string& why) {
    if (!run("mount -o loop " + image_.string() + " " + mnt_.string(), why)) return false;
    mounted_ = true;
    return true;
  }

  bool run(const std::string& command, std::string& why) {
    const auto out = tmp_.path() / "command.log";
    const int rc = std::system((command + " >" + out.string() + " 2>&1").c_str());
    if (rc == 0) return true;
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    why = "`" + command + "` failed (" + std::to_string(rc) + "): " + text.str();
    return false;
  }

  testsupport::TempDir tmp_;
  std::filesystem::path image_;
  std::filesystem::path mnt_;
  bool mounted_ = false;
  unsigned ballasts_ = 0;
  std::vector<std::filesystem::path> protected_;
};

}  // namespace catga::testing
