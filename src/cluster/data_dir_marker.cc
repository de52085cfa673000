#include "cluster/data_dir_marker.hpp"
#include "cluster/data_dir_marker_identity.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>

#include "cluster/data_dir.hpp"
#include "cluster/entry_format.hpp"

namespace catga::internal {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeader = "catga-cluster-marker 1";
// The line of this build's identity. Earlier builds wrote only
// "data_dir_identity=INODE.CTIME_NS"; it is still written, and brought up to
// date at every start (a build rolled back to compares it: it starts unless
// the sentinel's metadata changed since), and read when the new line is
// missing.
constexpr std::string_view kIdentityKey = "data_dir_id";
constexpr std::string_view kEarlierIdentityKey = "data_dir_identity";

long long nanoseconds(long long sec, long long nsec) { return sec * 1'000'000'000LL + nsec; }

std::optional<SentinelFacts> sentinel_facts(const fs::path& dir) {
  const fs::path path = dir / kSentinelFile;
  SentinelFacts f;
  struct statx sx {};
  if (::statx(AT_FDCWD, path.c_str(), 0, STATX_INO | STATX_CTIME | STATX_BTIME, &sx) == 0) {
    f.ino = sx.stx_ino;
    f.ctime_ns = nanoseconds(sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec);
    if (sx.stx_mask & STATX_BTIME) f.btime_ns = nanoseconds(sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec);
  } else {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    struct stat st {};  // no statx (an old kernel, a seccomp filter)
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    f.ino = st.st_ino;
    f.ctime_ns = nanoseconds(st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  }
  if (const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW); fd >= 0) {
    long generation = 0;  // the kernel writes an int into it
    if (::ioctl(fd, FS_IOC_GETVERSION, &generation) == 0) f.generation = static_cast<unsigned int>(generation);
    ::close(fd);
  }
  return f;
}

std::optional<unsigned long long> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  unsigned long long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const unsigned long long next = v * 10 + static_cast<unsigned long long>(c - '0');
    if (next / 10 != v) return std::nullopt;
    v = next;
  }
  return v;
}

Result<JoinState> parse_state(std::string_view s) {
  if (s == "bootstrapped") return JoinState::bootstrapped;
  if (s == "joined") return JoinState::joined;
  if (s == "pending-join") return JoinState::pending_join;
  return Error(Code::data_loss, "unknown state '" + std::string(s) + "'");
}

std::string encode(const DataDirMarker& m, const std::string& earlier_identity) {
  std::string body(kHeader);
  body += "\ncluster_id=" + m.cluster_id + "\nnode_id=" + std::to_string(m.node_id) +
          "\nstate=" + std::string(to_string(m.state)) + "\n" + std::string(kEarlierIdentityKey) + "=" +
          earlier_identity + "\n" + std::string(kIdentityKey) + "=" + m.identity + "\n";
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

std::string identity_of(const SentinelFacts& f) {
  std::string s = "ino=" + std::to_string(f.ino);
  if (f.btime_ns) return s + ",btime=" + std::to_string(*f.btime_ns);
  if (f.generation) return s + ",gen=" + std::to_string(*f.generation);
  return s;
}

std::string earlier_identity_of(const SentinelFacts& f) {
  return std::to_string(f.ino) + "." + std::to_string(f.ctime_ns);
}

bool identity_matches(const SentinelFacts& f, std::string_view recorded) {
  if (recorded.rfind("ino=", 0) == 0) {
    // Every field recorded must be reported again, equal; a field the file
    // system did not report then (a birth time, once a kernel reports it) is
    // taken as it is now (the marker is then rewritten with it).
    bool ino_seen = false;
    for (bool more = true; more;) {
      const auto comma = recorded.find(',');
      const std::string_view field = recorded.substr(0, comma);
      more = comma != std::string_view::npos;
      if (more) recorded.remove_prefix(comma + 1);
      const auto eq = field.find('=');
      if (eq == std::string_view::npos) return false;
      const std::string_view key = field.substr(0, eq);
      const auto value = parse_number(field.substr(eq + 1));
      if (!value) return false;
      if (key == "ino") {
        if (*value != f.ino) return false;
        ino_seen = true;
      } else if (key == "btime") {
        if (!f.btime_ns || static_cast<unsigned long long>(*f.btime_ns) != *value) return false;
      } else if (key == "gen") {
        if (!f.generation || *f.generation != *value) return false;
      } else {
        return false;  // a field of a newer build: not ours to judge
      }
    }
    return ino_seen;
  }
  // An earlier build's "INODE.CTIME_NS" (a node upgraded in place).
  const auto dot = recorded.find('.');
  if (dot == std::string_view::npos) return false;
  const auto ino = parse_number(recorded.substr(0, dot));
  const auto ctime = parse_number(recorded.substr(dot + 1));
  if (!ino || !ctime || *ino != f.ino) return false;
  if (*ctime == static_cast<unsigned long long>(f.ctime_ns)) return true;
  // The change time moved (a chmod, chown, hard link since). The earlier
  // marker cannot tell that from a copy that was given the same inode
  // number (rm -rf, then a restore on the same file system). The birth time
  // can: the node's own sentinel was created before its marker recorded
  // that change time (created, renamed into place, then recorded), a copy
  // after. Without a birth time the directory is refused, as the earlier
  // build refused it.
  return f.btime_ns && static_cast<unsigned long long>(*f.btime_ns) <= *ctime;
}

// An earlier build's marker on a file system without birth times, the inode
// matching, the change time not: identity_matches refuses what it cannot
// tell apart.
bool earlier_identity_undecidable(const SentinelFacts& f, std::string_view recorded) {
  const auto dot = recorded.find('.');
  if (recorded.rfind("ino=", 0) == 0 || dot == std::string_view::npos || f.btime_ns) return false;
  const auto ino = parse_number(recorded.substr(0, dot));
  return ino && *ino == f.ino;
}

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
  const auto facts = sentinel_facts(dir);
  return facts ? identity_of(*facts) : std::string();
}

bool sentinel_matches(const fs::path& dir, std::string_view recorded) {
  const auto facts = sentinel_facts(dir);
  return facts && identity_matches(*facts, recorded);
}

namespace {

// A marker as read, with its earlier-build identity line ("" if none).
struct ReadMarker {
  DataDirMarker marker;
  std::string earlier_identity;
};

Result<std::optional<ReadMarker>> read_marker_lines(const fs::path& dir) {
  const fs::path path = dir / kMarkerFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<ReadMarker>{};
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
  std::string earlier_identity;
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
    } else if (key == kIdentityKey) {
      m.identity = value;
    } else if (key == kEarlierIdentityKey) {
      earlier_identity = value;
    }  // unknown keys: written by a newer version, ignored
  }
  if (m.identity.empty()) m.identity = earlier_identity;  // written by an earlier build
  if (m.node_id == 0 || !have_state) return corrupt("node_id or state missing");
  return std::optional<ReadMarker>(ReadMarker{std::move(m), std::move(earlier_identity)});
}

}  // namespace

Result<std::optional<DataDirMarker>> read_marker(const fs::path& dir) {
  auto read = read_marker_lines(dir);
  if (!read) return read.error();
  if (!*read) return std::optional<DataDirMarker>{};
  return std::optional<DataDirMarker>(std::move((*read)->marker));
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
  const auto facts = sentinel_facts(dir);
  if (!facts) {
    return Error(Code::internal, "cannot stat " + (dir / kSentinelFile).string() + ": " + std::strerror(errno));
  }
  marker.identity = identity_of(*facts);
  return write_file_durably(dir, std::string(kMarkerFile), encode(marker, earlier_identity_of(*facts)));
}

Result<StartDecision> decide_start(const ClusterOptions& o, bool join) {
  const fs::path& dir = o.data_dir;
  auto read = read_marker_lines(dir);
  if (!read) return read.error();
  const bool has_log = holds_raft_files(dir);
  StartDecision d;
  if (!*read) {
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
  const DataDirMarker& m = (*read)->marker;
  if (m.cluster_id != o.cluster_id) {
    return refuse(o, describe(dir, m) + ", but this node is configured for cluster '" + o.cluster_id +
                         "'. A data directory never moves between clusters. " + rejoin_steps(o));
  }
  if (m.node_id != o.node_id) {
    return refuse(o, describe(dir, m) + ": it belongs to another node. Give each node its own data directory.");
  }
  // The sentinel's identity now, read once for the checks below.
  const auto facts = sentinel_facts(dir);
  if (facts && earlier_identity_undecidable(*facts, m.identity) && !identity_matches(*facts, m.identity)) {
    return refuse(o, describe(dir, m) + ", recording the identity of " + std::string(kSentinelFile) + " as " +
                         m.identity + " (an earlier build's form: inode and change time). The inode matches, the "
                         "change time does not (" + earlier_identity_of(*facts) + "): a chmod, chown or hard link "
                         "since, or a copy that was given the same inode number, and this file system reports no "
                         "birth time to tell them apart. If this is the node's own directory and it is not "
                         "pending-join, remove " + std::string(kMarkerFile) + " and " + std::string(kSentinelFile) +
                         ": the node then adopts the directory and writes a new marker. If it may be a copy: " +
                         rejoin_steps(o));
  }
  if (!facts || !identity_matches(*facts, m.identity)) {
    return refuse(o, describe(dir, m) + ", but this directory is not the one that marker was written in (" +
                         std::string(kSentinelFile) + " identity " + (facts ? identity_of(*facts) : std::string()) +
                         ", recorded " +
                         m.identity + "): it is a copy, e.g. a backup put back. A voter started from an older "
                         "copy has forgotten log entries it acknowledged and the vote it cast, and can elect a "
                         "leader that lacks committed writes. Backups are restored only into a new cluster "
                         "(restore_backup, catga-orders --restore-from). " + rejoin_steps(o));
  }
  // Its own directory, recorded by an earlier build (or before the file
  // system reported a birth time): record it in this build's form. Also
  // when the earlier builds' line is out of date (the change time moved):
  // a build rolled back to then still starts.
  if (m.identity != identity_of(*facts) || (*read)->earlier_identity != earlier_identity_of(*facts)) {
    d.write_after_open = DataDirMarker{m.cluster_id, m.node_id, m.state, {}};
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
