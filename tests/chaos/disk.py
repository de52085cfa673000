"""Disk faults of the chaos test: each node's data directory on its own small
ext4 filesystem, loop-mounted (as tests/cluster/small_disk.hpp does), which the
nemesis can shut down (FS_IOC_SHUTDOWN: every later I/O fails with EIO, as on
a dying disk) or fill up (ENOSPC). Needs root, loop devices and mkfs.ext4;
probe() says why not, and the driver then runs without disk faults.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import struct
import subprocess
import tempfile

FS_IOC_SHUTDOWN = 0x8004587D         # _IOR('X', 125, __u32)
FS_GOING_FLAGS_LOGFLUSH = 1          # flush the journal, then fail every I/O
IMAGE_MIB = 256                      # sparse: takes what the node writes


def _run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, r.stdout.strip()


class LoopDisk:
    """An ext4 image mounted at `mount_point` for the disk's lifetime."""

    def __init__(self, image, mount_point, mib=IMAGE_MIB):
        self.image, self.mount_point, self.mib = image, mount_point, mib
        self.mounted = False

    def create(self):
        """Formats and mounts; returns None or why it failed."""
        os.makedirs(self.mount_point, exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.mib << 20)
        ok, out = _run(["mkfs.ext4", "-q", "-F", "-m", "0", self.image])
        if not ok:
            return f"mkfs.ext4: {out}"
        return self.mount()

    def mount(self):
        ok, out = _run(["mount", "-o", "loop", self.image, self.mount_point])
        if not ok:
            return f"mount -o loop: {out}"
        self.mounted = True
        return None

    def umount(self):
        if not self.mounted:
            return
        ok, _ = _run(["umount", self.mount_point])
        if not ok:
            _run(["umount", "-l", self.mount_point])
        self.mounted = False

    def shutdown(self):
        """Every later I/O on the filesystem fails (until it is mounted again)."""
        fd = os.open(self.mount_point, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", FS_GOING_FLAGS_LOGFLUSH))
        finally:
            os.close(fd)

    def remount(self):
        """After shutdown(): unmount (the node must be gone) and mount again; returns None or why not."""
        self.umount()
        return self.mount()

    def ballast_path(self):
        return os.path.join(self.mount_point, "chaos-ballast")

    def fill(self):
        """Takes every free byte with a ballast file; returns the bytes taken."""
        taken = 0
        fd = os.open(self.ballast_path(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            st = os.statvfs(self.mount_point)
            want = (st.f_bavail * st.f_frsize) & ~4095
            if want > 0:
                try:
                    os.posix_fallocate(fd, 0, want)
                    taken = want
                except OSError:
                    pass
            os.lseek(fd, taken, os.SEEK_SET)
            block = b"B" * 65536
            while True:
                try:
                    n = os.write(fd, block)
                except OSError:
                    break
                if n <= 0:
                    break
                taken += n
            os.fsync(fd)
        finally:
            os.close(fd)
        return taken

    def free(self):
        try:
            os.unlink(self.ballast_path())
        except OSError:
            pass


def probe():
    """None if loop-mounted filesystems work here, else why not."""
    if os.geteuid() != 0:
        return f"needs root to mount a filesystem per node (running as uid {os.geteuid()})"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} not found (scripts/setup installs e2fsprogs and mount)"
    tmp = tempfile.mkdtemp(prefix="catga-chaos-probe-")
    try:
        disk = LoopDisk(os.path.join(tmp, "probe.img"), os.path.join(tmp, "mnt"), mib=16)
        why = disk.create()
        disk.umount()
        return why
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
