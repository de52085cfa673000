// src/cluster/data_dir_marker.hpp — the cluster marker of a data directory
// and the rules a node follows at start (docs/operations.md, "Data directory
// rules").
//
// The marker is a small text file, `catga-cluster`, next to libraft's files:
// which cluster (id) this directory belongs to, which node wrote it, how the
// node came into the configuration (bootstrapped it, was added to it, or is
// still waiting to be added), and the identity of the directory — the inode
// and birth time (statx) of a sentinel file, `catga-data-dir`, created with
// the first marker and never rewritten. A copy of the directory (cp, rsync,
// tar — a backup put back) gets a new sentinel inode and birth time, so a node
// can tell its own directory from an older copy of it: a voter started on an
// old copy has forgotten entries it acknowledged and the vote it cast. A
// metadata change (chmod, chown, a hard link, a Kubernetes fsGroup walk)
// touches neither. Where the file system reports no birth time, the inode's
// generation (FS_IOC_GETVERSION) stands in for it; where it reports neither,
// the inode number alone: a copy given the same inode number (rm -rf, then a
// restore on the same file system) then goes unnoticed. Earlier builds used
// the change time (ctime) instead, which every metadata change moves; their
// markers are accepted and rewritten (sentinel_matches).
//
// Written durably (temporary file, fsync, rename, fsync of the directory).
// Pure file-system functions, callable from any thread; JoinWatch is used on
// the node's loop thread only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "catga/cluster.hpp"
#include "catga/result.hpp"

namespace catga::internal {

enum class JoinState : std::uint8_t {
  bootstrapped,  // this node bootstrapped the configuration (or a restore / forced recovery made it the lone voter)
  joined,        // added by the leader (first seen itself in the configuration as a spare)
  pending_join,  // started empty with join = true; not yet added: it neither votes nor campaigns
};
std::string_view to_string(JoinState state) noexcept;

struct DataDirMarker {
  std::string cluster_id;
  std::uint64_t node_id = 0;
  JoinState state = JoinState::bootstrapped;
  // Of the sentinel file: "ino=N,btime=NS", "ino=N,gen=G" or "ino=N"; an
  // earlier build's "INODE.CTIME_NS" when read from its marker. Filled by
  // write_marker.
  std::string identity;
};

inline constexpr std::string_view kMarkerFile = "catga-cluster";
inline constexpr std::string_view kSentinelFile = "catga-data-dir";
// The marker, the sentinel and their temporary files.
bool is_marker_file_name(std::string_view name) noexcept;

// The marker of `dir`, or nothing if it has none. data_loss if it exists but
// does not parse or its checksum fails (the message names the file).
Result<std::optional<DataDirMarker>> read_marker(const std::filesystem::path& dir);
// Writes `marker` durably; creates the sentinel first if it is missing and
// records its identity (marker.identity is ignored).
Result<void> write_marker(const std::filesystem::path& dir, DataDirMarker marker);
// The sentinel's current identity ("" if it is missing).
std::string sentinel_identity(const std::filesystem::path& dir);
// Whether the sentinel in `dir` is the file a marker recorded as `recorded`:
// this build's form field by field (a field the file system did not report
// then is not compared); an earlier build's "INODE.CTIME_NS" when the inode
// matches and either the change time does, or the birth time is not after
// the recorded change time (the node's own sentinel was created before its
// marker was written, a copy after). False if the sentinel is missing.
bool sentinel_matches(const std::filesystem::path& dir, std::string_view recorded);

// What RaftNode::start does with a data directory, decided before libraft
// opens it.
struct StartDecision {
  bool bootstrap = false;     // bootstrap options.members (an empty directory, not joining)
  bool refuse_votes = false;  // pending join: drop vote requests until added
  // Write this marker once libraft has opened the directory (a new directory,
  // or one from before markers existed).
  std::optional<DataDirMarker> write_after_open;
};

// The rules (each refusal is failed_precondition naming the directory, the
// marker's values and what to do):
//   - a marker of another cluster id, or of another node id: refuse;
//   - a marker whose sentinel identity differs (the directory is a copy): refuse;
//     an earlier build's marker of the node's own directory is rewritten
//     after the start (write_after_open);
//   - a marker but no libraft files (the log was deleted): refuse, unless the
//     node is still pending-join and starts with join = true again;
//   - pending-join restarted without join = true: refuse;
//   - no marker and no libraft files: bootstrap (join = false) or wait to be
//     added without voting (join = true);
//   - no marker but libraft files (written before markers existed): adopt.
// `join` is ClusterOptions::join (JoinMode::join_existing).
Result<StartDecision> decide_start(const ClusterOptions& options, bool join);

// Loop thread of a pending-join node: watches the configurations it receives.
// The leader's add_member adds a member as a spare first, so a node that was
// added sees itself as a spare at some point (in the log it replays from the
// leader, or in the snapshot it installs); until then it drops vote requests.
// Seeing itself as a voter first is normal while it replays an old part of
// the log (it was a voter before it was removed), but if the member was never
// removed it stays so: the node keeps refusing votes and says so once.
class JoinWatch {
 public:
  enum class Verdict { waiting, joined, listed_as_voter };
  // `self_role`: this node's role in the current configuration, if listed.
  Verdict observe(std::optional<MemberRole> self_role) {
    if (!self_role) return Verdict::waiting;
    if (*self_role == MemberRole::spare) return Verdict::joined;
    if (warned_) return Verdict::waiting;
    warned_ = true;
    return Verdict::listed_as_voter;
  }

 private:
  bool warned_ = false;
};

// Logged once when JoinWatch says listed_as_voter.
std::string listed_as_voter_message(const ClusterOptions& options);

}  // namespace catga::internal
