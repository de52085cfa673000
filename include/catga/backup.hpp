// catga/backup.hpp — online backups of a replicated application's state, and
// the two ways to recover from a disaster: restoring a backup into a NEW
// cluster, and forcing a survivor of a lost majority into a one-member cluster
// (ClusterOptions::force_new_cluster).
//
// A backup is one file: the newest snapshot libraft wrote on the leader (its
// data file and its metadata, byte for byte) behind a text header that names
// the cluster id, the node that took it, the log index and term the state
// covers and the configuration at that index, and ends with a CRC-32 of
// everything before it. `head -n 20 FILE` shows the header.
//
// A backup is never put back under a member of a running cluster: a voter
// restored to an older state has forgotten entries it acknowledged and the
// vote it cast. `restore_backup` builds the data directory of the first member
// of a new cluster (new cluster id, one voter, the backup's state at the
// backup's index); the new cluster then grows by add_member. See
// docs/operations.md, "Backup and restore".
//
// Application::backup (application.hpp) takes a backup; these functions read
// and restore one. They touch only files; callable from any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "catga/export.hpp"
#include "catga/cluster.hpp"
#include "catga/result.hpp"

namespace catga {

struct BackupInfo {
  std::string cluster_id;        // of the cluster it was taken from
  std::uint64_t node_id = 0;     // the member that took it (the leader)
  std::uint64_t index = 0;       // the state covers the log up to this index
  std::uint64_t term = 0;        // the term of the entry at `index`
  std::uint64_t configuration_index = 0;  // where `members` was decided
  std::vector<Member> members;   // the configuration at `index` (peer_address: as given, else empty)
  std::uint64_t created_unix_ms = 0;
  std::string snapshot_file;     // libraft's file name, "snapshot-TERM-INDEX-TS"
  std::uint64_t snapshot_bytes = 0;  // libraft's snapshot data (the encoded state, maybe compressed)
  std::uint64_t file_bytes = 0;      // the whole backup file
};

// Parses and verifies a backup (structure and checksum). data_loss when it is
// truncated or corrupt, invalid_argument when it is not a Catga backup.
CATGA_EXPORT Result<BackupInfo> inspect_backup(std::string_view bytes);
// The same for a file (not_found / internal when it cannot be read).
CATGA_EXPORT Result<BackupInfo> read_backup_file(const std::filesystem::path& file);

// Disaster recovery: creates `new_cluster.data_dir` holding the backup's state
// as the first and only voter of a NEW cluster, then returns what it restored.
// Start the node afterwards with the same options (ApplicationBuilder::cluster)
// — it elects itself — and grow the cluster with add_member (new members
// start empty with `join = true`). Preconditions (failed_precondition
// otherwise, nothing written): `new_cluster` is valid, lists only this node,
// has neither `join` nor `force_new_cluster`, its cluster_id differs from the
// backup's, and data_dir is missing or empty (it may be a mount point). The
// state is built in data_dir/.catga-restoring, moved into place, and the
// cluster marker written last; if the restore is interrupted, empty data_dir
// and run it again.
CATGA_EXPORT Result<BackupInfo> restore_backup(const std::filesystem::path& file, const ClusterOptions& new_cluster);

}  // namespace catga
