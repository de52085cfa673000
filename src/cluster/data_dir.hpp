// src/cluster/data_dir.hpp — the health of a Raft node's data directory and
// the libraft files in it: is it writable, is there room for the log, which
// snapshot is the newest. Free functions, no state; callable from any thread
// (they touch only the file system).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "catga/result.hpp"

namespace catga::internal {

// libraft 0.22.1 preallocates its log in 8 MiB segments and refuses new
// entries while it holds less than 4 MiB of preallocated log: a node needs room
// for one whole segment (and a little for metadata) to make any progress.
inline constexpr std::uint64_t kMinFreeBytes = (8u << 20) + (1u << 20);

std::uint64_t free_bytes(const std::filesystem::path& dir);
// "12.3 MiB".
std::string mib(std::uint64_t bytes);
// "0a1b2c3d": a checksum as the marker and backup files write it.
std::string hex32(std::uint32_t value);

// Creates, writes, fsyncs and removes a small file in `dir`: 0 if that
// worked, otherwise the errno (ENOSPC, EROFS, EACCES, EIO...).
int write_probe(const std::filesystem::path& dir);

// A full disk is waited out (libraft refuses entries until it has room again);
// any other reason a directory cannot be written is not.
bool out_of_space(int err);

// Checks that data_dir exists (creating it), is writable and has room for the
// log. Errors: invalid_argument (cannot create/list/write), resource_exhausted
// (less than kMinFreeBytes free).
Result<void> prepare_data_dir(const std::filesystem::path& dir);

// True when `dir` holds a file libraft wrote (Catga's own marker files,
// write probes and a file system's lost+found do not count).
bool holds_raft_files(const std::filesystem::path& dir);

// The snapshot libraft loads at start: the newest "snapshot-TERM-INDEX-TIMESTAMP"
// that has its ".meta" (file name only; "" when there is none).
struct SnapshotFile {
  std::string name;  // "snapshot-TERM-INDEX-TS"; its metadata is name + ".meta"
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};
SnapshotFile newest_snapshot(const std::filesystem::path& dir);

// Writes `bytes` to dir/name durably: a temporary file, fsync, rename over
// `name`, fsync of the directory. Errors: internal with errno's text.
Result<void> write_file_durably(const std::filesystem::path& dir, const std::string& name, std::string_view bytes);

}  // namespace catga::internal
