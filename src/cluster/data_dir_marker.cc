#include "cluster/data_dir_marker.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cluster/data_dir.hpp"
#include "cluster/entry_format.hpp"

namespace catga::internal {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeader = "catga-cluster-marker 1";

Result<JoinState> parse_state(std::string_view s) {
  if (s == "bootstrapped") return JoinState::bootstrapped;
  if (s == "joined") return JoinState::joined;
  if (s == "pending-join") return JoinState::pending_join;
  return Error(Code::data_loss, "unknown state '" + std::string(s) + "'");
}

std::string encode(const DataDirMarker& m) {
  std::string body(kHeader);
  body += "\ncluster_id=" + m.cluster_id + "\nnode_id=" + std::to_string(m.node_id) +
          "\nstate=" + std::string(to_string(m.state)) + "\ndata_dir_identity=" + m.identity + "\n";
  return body + "crc32=" + hex32(crc32(body)) + "\n";
}

std::string describe(const fs::path& dir, const DataDirMarker& m) {
  return (dir / kMarkerFile).string() + " says cluster '" + m.cluster_id + "', node " + std::to_string(m.node_id) +
         ", " + std::string(to_string(m.state));
}

std::string rejoin_steps(const ClusterOptions& o) {
  const std::string id = std::to_string(o.node_id);
  return "To bring this member back: on the leader remove it (DELETE /raft/members/" + id +
         ", Application::remove_member(" + id + ")), move " + o.data_dir.string() +
         " aside, start the node with an empty data directory and --join (ClusterOptions::join), then add it "
         "again (POST /raft/members). See docs/operations.md, \"Data directory rules\".";
}

Error refuse(const ClusterOptions& o, const std::string& why) {
  return Error(Code::failed_precondition,
               "refusing to start Raft node " + std::to_string(o.node_id) + " in " + o.data_dir.string() + ": " + why);
}

}  // namespace

std::string_view to_string(JoinState state) noexcept {
  switch (state) {
    case JoinState::bootstrapped: return "bootstrapped";
    case JoinState::joined: return "joined";
    case JoinState::pending_join: return "pending-join";
  }
  return "?";
}

bool is_marker_file_name(std::string_view name) noexcept {
  auto tmp = [](std::string_view base) { return std::string(base) + ".tmp"; };
  return name == kMarkerFile || name == kSentinelFile || name == tmp(kMarkerFile) || name == tmp(kSentinelFile);
}

std::string sentinel_identity(const fs::path& dir) {
  struct stat st {};
  if (::stat((dir / kSentinelFile).c_str(), &st) != 0) return "";
  return std::to_string(static_cast<unsigned long long>(st.st_ino)) + "." +
         std::to_string(static_cast<long long>(st.st_ctim.tv_sec) * 1'000'000'000LL + st.st_ctim.tv_nsec);
}

Result<std::optional<DataDirMarker>> read_marker(const fs::path& dir) {
  const fs::path path = dir / kMarkerFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<DataDirMarker>{};
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  auto corrupt = [&](const std::string& why) {
    return Error(Code::data_loss, "cluster marker " + path.string() + " is unreadable: " + why +
                                      " (restore it from the node's records, or remove the member and re-add it "
                                      "with an empty data directory)");
  };
  const auto crc_at = text.rfind("crc32=");
  if (!in.good() && !in.eof()) return corrupt("read failed");
  if (crc_at == std::string::npos || text.compare(0, kHeader.size(), kHeader) != 0) return corrupt("no header or checksum");
  if (text.substr(crc_at) != "crc32=" + hex32(crc32(std::string_view(text).substr(0, crc_at))) + "\n") {
    return corrupt("checksum mismatch");
  }
  DataDirMarker m;
  std::istringstream lines(text.substr(0, crc_at));
  std::string line;
  std::getline(lines, line);  // header
  bool have_state = false;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) return corrupt("line '" + line + "'");
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "cluster_id") {
      m.cluster_id = value;
    } else if (key == "node_id") {
      m.node_id = std::strtoull(value.c_str(), nullptr, 10);
    } else if (key == "state") {
      auto s = parse_state(value);
      if (!s) return corrupt(s.error().message());
      m.state = *s;
      have_state = true;
    } else if (key == "data_dir_identity") {
      m.identity = value;
    }  // unknown keys: written by a newer version, ignored
  }
  if (m.node_id == 0 || !have_state) return corrupt("node_id or state missing");
  return std::optional<DataDirMarker>(std::move(m));
}

Result<void> write_marker(const fs::path& dir, DataDirMarker marker) {
  if (marker.cluster_id.find('\n') != std::string::npos) {
    return Error(Code::invalid_argument, "cluster_id must not contain a line break");
  }
  if (sentinel_identity(dir).empty()) {
    if (auto r = write_file_durably(dir, std::string(kSentinelFile),
                                    "This file identifies this data directory; a copy of the directory is not it.\n");
        !r) {
      return r;
    }
  }
  marker.identity = sentinel_identity(dir);
  return write_file_durably(dir, std::string(kMarkerFile), encode(marker));
}

Result<StartDecision> decide_start(const ClusterOptions& o, bool join) {
  const fs::path& dir = o.data_dir;
  auto read = read_marker(dir);
  if (!read) return read.error();
  const bool has_log = holds_raft_files(dir);
  StartDecision d;
  const std::optional<DataDirMarker>& marker = *read;
  if (!marker) {
    DataDirMarker fresh{o.cluster_id, o.node_id, JoinState::bootstrapped, {}};
    if (!has_log) {
      d.bootstrap = !join;
      d.refuse_votes = join;
      if (join) fresh.state = JoinState::pending_join;
    } else if (join) {
      fresh.state = JoinState::joined;  // a directory from before markers: adopted as it is
    }
    d.write_after_open = fresh;
    return d;
  }
  const DataDirMarker& m = *marker;
  if (m.cluster_id != o.cluster_id) {
    return refuse(o, describe(dir, m) + ", but this node is configured for cluster '" + o.cluster_id +
                         "'. A data directory never moves between clusters. " + rejoin_steps(o));
  }
  if (m.node_id != o.node_id) {
    return refuse(o, describe(dir, m) + ": it belongs to another node. Give each node its own data directory.");
  }
  if (m.identity != sentinel_identity(dir)) {
    return refuse(o, describe(dir, m) + ", but this directory is not the one that marker was written in (" +
                         std::string(kSentinelFile) + " identity " + sentinel_identity(dir) + ", recorded " +
                         m.identity + "): it is a copy, e.g. a backup put back. A voter started from an older "
                         "copy has forgotten log entries it acknowledged and the vote it cast, and can elect a "
                         "leader that lacks committed writes. Backups are restored only into a new cluster "
                         "(restore_backup, catga-orders --restore-from). " + rejoin_steps(o));
  }
  if (m.state == JoinState::pending_join) {
    if (!join) {
      return refuse(o, describe(dir, m) + ": it was started with --join and has not been added yet. Start it with "
                                          "--join (ClusterOptions::join) again, then add it on the leader.");
    }
    d.refuse_votes = true;
    return d;
  }
  if (!has_log) {
    return refuse(o, describe(dir, m) + ", but its Raft log and snapshots are gone: this member has forgotten "
                                        "what it acknowledged and how it voted, and must not vote. " + rejoin_steps(o));
  }
  return d;
}

std::string listed_as_voter_message(const ClusterOptions& o) {
  return "this node started with an empty data directory (--join) and the configuration it received lists it as a "
         "voter before it ever listed it as a spare. That is expected while it replays the log from before it was "
         "removed; if it was never removed (its data was wiped while it was a member), its empty log must not vote: "
         "it drops vote requests until the leader's add_member lists it as a spare. " + rejoin_steps(o);
}

}  // namespace catga::internal
