// src/cluster/data_dir_marker_identity.hpp — how the data directory's
// sentinel file is identified (data_dir_marker.hpp), as pure functions of
// what the file system reports, so that tests can judge file systems the
// test machine does not have (no birth time, no inode generation).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace catga::internal {

// What identifies the sentinel file. The inode number and the birth time
// change with a copy (cp, rsync, tar — every restore creates the file anew)
// and with nothing else; the change time (ctime), which earlier builds used,
// also moves with chmod, chown, a hard link, a relabel or a Kubernetes
// fsGroup walk. Where the file system reports no birth time (statx without
// STATX_BTIME: ext4 with 128-byte inodes, some network file systems), the
// inode's generation (FS_IOC_GETVERSION: ext2/3/4, XFS, btrfs), which a
// reused inode number does not keep; where there is neither, the inode
// number alone.
struct SentinelFacts {
  unsigned long long ino = 0;
  long long ctime_ns = 0;
  std::optional<long long> btime_ns;
  std::optional<unsigned long> generation;
};

// This build's form: "ino=N,btime=NS", "ino=N,gen=G" or "ino=N".
std::string identity_of(const SentinelFacts& facts);
// Earlier builds' form: "INODE.CTIME_NS".
std::string earlier_identity_of(const SentinelFacts& facts);
// The rule of sentinel_matches (data_dir_marker.hpp) on `facts`.
bool identity_matches(const SentinelFacts& facts, std::string_view recorded);
// An earlier build's identity whose inode matches `facts` on a file system
// without birth times: identity_matches refuses it when the change time
// moved, since a metadata change and a copy given the same inode number
// cannot be told apart (the refusal says so).
bool earlier_identity_undecidable(const SentinelFacts& facts, std::string_view recorded);

}  // namespace catga::internal
