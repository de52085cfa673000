// Backups (catga/backup.hpp), forced recovery (ClusterOptions::force_new_cluster)
// and Application::backup.
#include "cluster/backup.hpp"
#include "cluster/member_address.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include "catga/application.hpp"
#include "cluster/data_dir.hpp"
#include "cluster/data_dir_marker.hpp"
#include "cluster/entry_format.hpp"
#include "cluster/raft_c.h"
#include "cluster/raft_node.hpp"
#include "core/log.hpp"
#include "core/replicator.hpp"
#include "core/waiter.hpp"

namespace catga {

namespace fs = std::filesystem;
using internal::crc32;
using internal::hex32;

namespace {

constexpr std::string_view kMagic = "catga-backup 1\n";
constexpr std::size_t kTrailerBytes = 15;  // "crc32=XXXXXXXX\n"
constexpr std::string_view kRestoringDir = ".catga-restoring";

Result<MemberRole> parse_role(std::string_view s) {
  if (s == "voter") return MemberRole::voter;
  if (s == "standby") return MemberRole::standby;
  if (s == "spare") return MemberRole::spare;
  return Error(Code::data_loss, "unknown role '" + std::string(s) + "'");
}

MemberRole role_of(int c_role) {
  switch (c_role) {
    case CATGA_ROLE_STANDBY: return MemberRole::standby;
    case CATGA_ROLE_SPARE: return MemberRole::spare;
    default: return MemberRole::voter;
  }
}

Result<std::string> read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    return Error(err == ENOENT ? Code::not_found : Code::internal,
                 "cannot open " + path.string() + ": " + std::strerror(err));
  }
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return Error(Code::internal, "cannot read " + path.string());
  return std::move(out).str();
}

// A parsed backup: the info and where libraft's two files sit in the bytes.
struct Parsed {
  BackupInfo info;
  std::string_view meta;
  std::string_view data;
};

std::string encode_backup(const BackupInfo& info, std::string_view meta, std::string_view data) {
  std::string out(kMagic);
  out += "cluster_id=" + info.cluster_id + "\n";
  out += "node_id=" + std::to_string(info.node_id) + "\n";
  out += "index=" + std::to_string(info.index) + "\n";
  out += "term=" + std::to_string(info.term) + "\n";
  out += "configuration_index=" + std::to_string(info.configuration_index) + "\n";
  for (const Member& m : info.members) {
    // "RAFT" or "RAFT/PEER" as in the configuration (member_address.hpp).
    out += "member=" + std::to_string(m.id) + " " + internal::configuration_address(m) + " " +
           std::string(to_string(m.role)) + "\n";
  }
  out += "created_unix_ms=" + std::to_string(info.created_unix_ms) + "\n";
  out += "snapshot_file=" + info.snapshot_file + "\n";
  out += "meta_bytes=" + std::to_string(meta.size()) + "\n";
  out += "data_bytes=" + std::to_string(data.size()) + "\n\n";
  out.reserve(out.size() + meta.size() + data.size() + kTrailerBytes);
  out.append(meta);
  out.append(data);
  out += "crc32=" + hex32(crc32(out)) + "\n";
  return out;
}

Result<Parsed> parse_backup(std::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    return Error(Code::invalid_argument, "not a Catga backup (it does not start with \"catga-backup 1\")");
  }
  auto corrupt = [](const std::string& why) { return Error(Code::data_loss, "corrupt backup: " + why); };
  if (bytes.size() < kMagic.size() + kTrailerBytes) return corrupt("truncated");
  const std::string_view trailer = bytes.substr(bytes.size() - kTrailerBytes);
  const std::string_view covered = bytes.substr(0, bytes.size() - kTrailerBytes);
  if (trailer.substr(0, 6) != "crc32=" || trailer.back() != '\n') return corrupt("truncated (no checksum at the end)");
  if (trailer.substr(6, 8) != hex32(crc32(covered))) return corrupt("checksum mismatch");
  const auto header_end = covered.find("\n\n");
  if (header_end == std::string_view::npos) return corrupt("no end of header");
  Parsed p;
  p.info.file_bytes = bytes.size();
  std::uint64_t meta_bytes = 0, data_bytes = 0;
  std::istringstream lines(std::string(covered.substr(kMagic.size(), header_end + 1 - kMagic.size())));
  std::string line;
  auto number = [](const std::string& v) { return std::strtoull(v.c_str(), nullptr, 10); };
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) return corrupt("header line '" + line + "'");
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "cluster_id") p.info.cluster_id = value;
    else if (key == "node_id") p.info.node_id = number(value);
    else if (key == "index") p.info.index = number(value);
    else if (key == "term") p.info.term = number(value);
    else if (key == "configuration_index") p.info.configuration_index = number(value);
    else if (key == "created_unix_ms") p.info.created_unix_ms = number(value);
    else if (key == "snapshot_file") p.info.snapshot_file = value;
    else if (key == "meta_bytes") meta_bytes = number(value);
    else if (key == "data_bytes") data_bytes = number(value);
    else if (key == "member") {
      std::istringstream fields(value);
      Member m;
      std::string role;
      std::string address;
      if (!(fields >> m.id >> address >> role)) return corrupt("member '" + value + "'");
      internal::split_configuration_address(address, m);
      auto r = parse_role(role);
      if (!r) return corrupt(r.error().message());
      m.role = *r;
      p.info.members.push_back(std::move(m));
    }
  }
  const std::size_t body = header_end + 2;
  if (meta_bytes + data_bytes != covered.size() - body) return corrupt("sizes do not add up");
  if (p.info.index == 0 || p.info.term == 0 || p.info.members.empty() || p.info.snapshot_file.empty()) {
    return corrupt("index, term, members or snapshot_file missing");
  }
  internal::SnapshotFile named;
  unsigned long long term = 0, index = 0, ts = 0;
  int consumed = 0;
  if (std::sscanf(p.info.snapshot_file.c_str(), "snapshot-%llu-%llu-%llu%n", &term, &index, &ts, &consumed) != 3 ||
      static_cast<std::size_t>(consumed) != p.info.snapshot_file.size() || term != p.info.term ||
      index != p.info.index) {
    return corrupt("snapshot_file '" + p.info.snapshot_file + "' does not match index and term");
  }
  p.meta = covered.substr(body, meta_bytes);
  p.data = covered.substr(body + meta_bytes, data_bytes);
  p.info.snapshot_bytes = data_bytes;
  return p;
}

Error refuse_restore(const std::string& why) {
  return Error(Code::failed_precondition, "restore_backup: " + why);
}

// The backup of data_dir's newest snapshot, which must cover `min_index`.
Result<std::string> backup_from_dir(const fs::path& dir, const std::string& cluster_id, std::uint64_t node_id,
                                    std::uint64_t min_index) {
  Error last(Code::internal, "no snapshot in " + dir.string());
  // libraft may delete the snapshot between listing and reading (a newer one
  // replaced it): list again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const internal::SnapshotFile snap = internal::newest_snapshot(dir);
    if (snap.name.empty()) break;
    if (snap.index < min_index) {
      return Error(Code::internal, "the newest snapshot in " + dir.string() + " covers index " +
                                       std::to_string(snap.index) + ", the backup asked for " + std::to_string(min_index));
    }
    auto meta = read_whole_file(dir / (snap.name + ".meta"));
    auto data = meta ? read_whole_file(dir / snap.name) : Result<std::string>(meta.error());
    if (!meta || !data) {
      last = !meta ? meta.error() : data.error();
      if (last.code() == Code::not_found) continue;
      return last;
    }
    BackupInfo info;
    info.cluster_id = cluster_id;
    info.node_id = node_id;
    info.index = snap.index;
    info.term = snap.term;
    info.snapshot_file = snap.name;
    info.created_unix_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                          std::chrono::system_clock::now().time_since_epoch())
                                                          .count());
    char errmsg[256] = {0};
    auto add = [](void* ctx, std::uint64_t id, const char* address, int role) {
      // The Raft address and the peer address the member was given, if any.
      Member m{id, {}, role_of(role), {}};
      internal::split_configuration_address(address, m);
      static_cast<BackupInfo*>(ctx)->members.push_back(std::move(m));
    };
    if (int rv = catga_raft_decode_snapshot_meta(meta->data(), meta->size(), &info.configuration_index, add, &info,
                                                 errmsg, sizeof errmsg);
        rv != 0) {
      return Error(Code::data_loss, "snapshot " + snap.name + " in " + dir.string() + ": " + errmsg);
    }
    return encode_backup(info, *meta, *data);
  }
  return last;
}

const Member& self_of(const ClusterOptions& o) {
  return *std::find_if(o.members.begin(), o.members.end(), [&](const Member& m) { return m.id == o.node_id; });
}

// The configuration names this node with its peer address, if it has one
// (member_address.hpp): members added later dial it there.
Result<void> force_configuration(const fs::path& dir, const ClusterOptions& o, std::uint64_t term) {
  const std::string& address = self_of(o).address;
  const std::string stored = internal::configuration_address(self_of(o));
  const catga_raft_member self{o.node_id, stored.c_str(), CATGA_ROLE_VOTER};
  char errmsg[512] = {0};
  if (int rv = catga_raft_force_configuration(dir.c_str(), o.node_id, address.c_str(), &self, 1, term, errmsg,
                                              sizeof errmsg);
      rv != 0) {
    return Error(rv == CATGA_RAFT_CORRUPT || rv == CATGA_RAFT_MALFORMED ? Code::data_loss : Code::internal,
                 "cannot write the new configuration in " + dir.string() + ": " + errmsg);
  }
  return {};
}

// A directory with at least one log entry or snapshot (raft_recover needs one).
bool holds_entries(const fs::path& dir) {
  if (!internal::newest_snapshot(dir).name.empty()) return true;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    unsigned long long first = 0, last = 0;
    int consumed = 0;
    const std::string name = it->path().filename().string();
    if (std::sscanf(name.c_str(), "%llu-%llu%n", &first, &last, &consumed) == 2 &&
        static_cast<std::size_t>(consumed) == name.size()) {
      return true;
    }
  }
  return false;
}

Result<void> fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return Error(Code::internal, "cannot fsync " + dir.string() + ": " + std::strerror(err));
  }
  ::close(fd);
  return {};
}

}  // namespace

Result<BackupInfo> inspect_backup(std::string_view bytes) {
  auto parsed = parse_backup(bytes);
  if (!parsed) return parsed.error();
  return std::move(parsed->info);
}

Result<BackupInfo> read_backup_file(const fs::path& file) {
  auto bytes = read_whole_file(file);
  if (!bytes) return bytes.error();
  auto info = inspect_backup(*bytes);
  if (!info) return Error(info.error().code(), file.string() + ": " + info.error().message());
  return info;
}

Result<BackupInfo> restore_backup(const fs::path& file, const ClusterOptions& o) {
  auto bytes = read_whole_file(file);
  if (!bytes) return bytes.error();
  auto parsed = parse_backup(*bytes);
  if (!parsed) return Error(parsed.error().code(), file.string() + ": " + parsed.error().message());
  const BackupInfo& info = parsed->info;
  if (auto valid = o.validate(); !valid) return valid.error();
  if (o.join || o.force_new_cluster) {
    return refuse_restore("the restored node is the new cluster's first member: set neither join nor force_new_cluster");
  }
  if (o.members.size() != 1) {
    return refuse_restore("list only this node in members: a restore starts a one-member cluster, which then grows "
                          "by add_member (new members start empty with join = true)");
  }
  if (o.cluster_id == info.cluster_id) {
    return refuse_restore("the backup comes from cluster '" + info.cluster_id +
                          "'; a restore creates a NEW cluster: give it another cluster id (--cluster-id), so that "
                          "no member of the old cluster can take part in it");
  }
  fs::path dir = o.data_dir;
  if (!dir.has_filename()) dir = dir.parent_path();
  // Built inside the directory (which may be a mount point: it is never
  // replaced, and renames stay on its file system), then moved into place.
  const fs::path staging = dir / std::string(kRestoringDir);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      if (it->path().filename() != kRestoringDir) {
        return refuse_restore("data_dir " + dir.string() + " is not empty: a restore writes a new data directory");
      }
    }
  }
  fs::remove_all(staging, ec);  // left by an interrupted restore
  fs::create_directories(staging, ec);
  if (ec) return Error(Code::internal, "cannot create " + staging.string() + ": " + ec.message());
  auto build = [&]() -> Result<void> {
    if (auto r = internal::write_file_durably(staging, info.snapshot_file, parsed->data); !r) return r;
    if (auto r = internal::write_file_durably(staging, info.snapshot_file + ".meta", parsed->meta); !r) return r;
    if (auto r = force_configuration(staging, o, info.term); !r) return r;
    // Into place: libraft's configuration entry and metadata first (alone
    // they do not load), then the snapshot, then the marker (written in
    // place: moving the sentinel would change its identity). Interrupted
    // before the marker, the directory is refused or empty, never the old
    // cluster's configuration.
    std::vector<fs::path> files;
    for (auto it = fs::directory_iterator(staging, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      files.push_back(it->path());
    }
    if (ec) return Error(Code::internal, "cannot list " + staging.string() + ": " + ec.message());
    std::stable_partition(files.begin(), files.end(), [&](const fs::path& f) {
      return f.filename().string().rfind(info.snapshot_file, 0) != 0;
    });
    for (const fs::path& f : files) {
      fs::rename(f, dir / f.filename(), ec);
      if (ec) return Error(Code::internal, "cannot move " + f.string() + " into " + dir.string() + ": " + ec.message());
    }
    if (auto r = fsync_dir(dir); !r) return r;
    if (auto r = internal::write_marker(dir, {o.cluster_id, o.node_id, internal::JoinState::bootstrapped, {}}); !r) {
      return r;
    }
    fs::remove(staging, ec);
    return fsync_dir(dir);
  };
  if (auto built = build(); !built) {
    fs::remove_all(staging, ec);
    return Error(built.error().code(), built.error().message() + " (empty " + dir.string() +
                                           " before running the restore again)");
  }
  internal::log().warn("restored backup {} of cluster '{}' (index {}, term {}) into {} as the only voter of the new "
                       "cluster '{}'",
                       file.string(), info.cluster_id, info.index, info.term, dir.string(), o.cluster_id);
  return info;
}

namespace internal {

void take_backup(RaftNode& node, detail::UniqueFunction<void(Result<std::string>)> done,
                 std::chrono::milliseconds wait) {
  const ClusterOptions& o = node.options();
  node.take_snapshot(
      [dir = o.data_dir, cluster_id = o.cluster_id, id = o.node_id,
       done = std::move(done)](Result<std::uint64_t> index) mutable {
        if (!index) return done(index.error());
        // Off the loop thread: the snapshot file is as large as the state.
        std::thread([dir = std::move(dir), cluster_id = std::move(cluster_id), id, min = *index,
                     done = std::move(done)]() mutable { done(backup_from_dir(dir, cluster_id, id, min)); })
            .detach();
      },
      wait);
}

Result<void> force_new_cluster(const ClusterOptions& o) {
  const fs::path& dir = o.data_dir;
  auto refuse = [&](const std::string& why) {
    return Error(Code::failed_precondition, "force_new_cluster in " + dir.string() + ": " + why);
  };
  auto marker = read_marker(dir);
  if (!marker) return marker.error();
  if (*marker) {
    const DataDirMarker& m = **marker;
    if (m.node_id != o.node_id) return refuse("the directory belongs to node " + std::to_string(m.node_id));
    if (!sentinel_matches(dir, m.identity)) {
      return refuse("the directory is a copy (its cluster marker was written elsewhere); recover from a survivor's "
                    "own directory, or restore a backup into a new cluster");
    }
    if (m.cluster_id == o.cluster_id) {
      return refuse("the recovered cluster is a new cluster: give it a new cluster id (it is still '" + m.cluster_id +
                    "'), so that the lost members cannot rejoin with their old data. If this node was already "
                    "recovered into cluster '" + o.cluster_id + "', start it without force_new_cluster");
    }
    if (m.state == JoinState::pending_join) return refuse("this node was never added to the cluster: it has no state to keep");
  }
  if (!holds_entries(dir)) return refuse("it holds no Raft log or snapshot: there is nothing to recover");
  if (auto r = force_configuration(dir, o, 0); !r) return r;
  if (auto r = write_marker(dir, {o.cluster_id, o.node_id, JoinState::bootstrapped, {}}); !r) return r;
  log().warn("raft node {}: forced a new configuration in {}: this node alone, as the only voter of cluster '{}' "
             "(the members it replaced must never start again with their old data)",
             o.node_id, dir.string(), o.cluster_id);
  return {};
}

}  // namespace internal

// ---------------------------------------------------------------- Application

void Application::backup(UniqueFunction<void(Result<std::string>)> done) {
  if (!replicated_) return done(Error{Code::failed_precondition, "an in-memory application has no state on disk to back up"});
  impl_->replicator->backup(std::move(done), internal::kSnapshotWait);
}

Result<BackupInfo> Application::backup(const fs::path& file) {
  internal::Waiter<Result<std::string>> waiter;
  backup([&waiter](Result<std::string> r) { waiter.set(std::move(r)); });
  Result<std::string> bytes = waiter.wait();
  if (!bytes) return bytes.error();
  auto info = inspect_backup(*bytes);
  if (!info) return info.error();
  fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  if (auto written = internal::write_file_durably(dir, file.filename().string(), *bytes); !written) {
    return written.error();
  }
  return info;
}

}  // namespace catga
