// catga/cluster.hpp — the one block of options that turns an application into
// a replicated Raft cluster, and the status a node reports about itself.
//
// `ClusterOptions` is a plain value: fill it, call `validate()` (the
// Application does it for you before anything starts). `NodeStatus` is a
// consistent snapshot taken on the node's loop thread; reading it is
// thread-safe.
//
// Security (docs/security.md): with `peer_secret` set, every connection to the
// Raft port and to the peer channel first proves knowledge of the secret
// (HMAC-SHA256 challenge and response, both directions) before libraft or the
// peer protocol reads a byte of it. With `tls_ca_file`, `tls_cert_file` and
// `tls_key_file` set, the Raft port speaks mutual TLS 1.3 only and a peer's
// certificate must name the node id it claims ("node-<id>"). Without either
// the ports accept anyone (insecure mode, logged as a warning at start).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catga/export.hpp"
#include "catga/result.hpp"
#include "catga/tracing.hpp"

namespace catga {

// A member's place in the configuration (libraft's roles).
enum class MemberRole : std::uint8_t {
  voter,    // votes and counts toward the majority
  standby,  // receives the log, does not vote
  spare,    // known, receives nothing
};

struct Member {
  std::uint64_t id = 0;
  std::string address;  // "HOST:PORT" of the member's Raft port
  MemberRole role = MemberRole::voter;
  // "HOST:PORT" of the member's peer channel (forwarded commands, read
  // indexes). Empty: the Raft host and the Raft port + 1.
  std::string peer_address;

  friend bool operator==(const Member&, const Member&) = default;
};

struct CATGA_EXPORT ClusterOptions {
  // This node's id; must appear in `members`.
  std::uint64_t node_id = 0;
  // Every member at first start, this node included. Later starts load the
  // configuration from the data directory; `members` must still name this node.
  std::vector<Member> members;
  // Where the Raft log, snapshots and metadata live (created if missing).
  std::filesystem::path data_dir;
  // True for a node being added to a running cluster: with an empty data
  // directory it waits for the leader instead of bootstrapping `members`
  // (bootstrapping would fork a second history). Ignored once it has a log.
  // Until the leader's add_member lists it as a spare the node drops vote
  // requests: an empty log must not vote (a member whose data was wiped
  // without removing it first would otherwise elect a leader that lacks
  // committed writes). docs/operations.md, "Data directory rules", has every
  // rule the node checks at start.
  bool join = false;
  // True for the first start of a new cluster whose members may not all be
  // up yet. A node with an empty data directory started without `join` asks
  // its peers first (docs/operations.md, "Data directory rules") and
  // bootstraps `members` on its own only when it is the only member, or when
  // every peer answered and none has seen an election. Peers that stay
  // silent look exactly like a whole-cluster outage in which this voter's
  // disk was wiped — bootstrapping then forks the history and loses what was
  // committed — so by default it keeps asking for a while, then refuses to
  // start. With `new_cluster` it bootstraps after one election timeout of
  // silence (etcd's --initial-cluster-state new). A peer that says this
  // member already joined, or that holds a cluster log it cannot yet judge,
  // still refuses it. Ignored once the node has a log. Not with `join`.
  bool new_cluster = false;
  // Disaster recovery after losing a majority for good (etcd's
  // --force-new-cluster): at start, before libraft opens `data_dir`, the
  // stored configuration is replaced by this node alone as the only voter
  // (libraft's raft_recover appends that configuration after the last entry
  // in the log). Everything in this node's log is kept, entries it had not
  // seen committed included; writes only the lost members had are gone.
  // `cluster_id` must differ from the one in the data directory's marker (the
  // recovered cluster is a new cluster; the lost members must never come back
  // with their old data). Use it for one start, then remove it; grow again
  // with add_member. Not with `join`.
  bool force_new_cluster = false;

  // Defaults favour stability on shared, noisy machines: an election timeout of
  // 1 s rides out GC-free but scheduler-starved pauses; the plan's 150 ms / 50 ms
  // is supported for fast failover on quiet machines.
  std::chrono::milliseconds election_timeout{1000};
  std::chrono::milliseconds heartbeat_interval{100};

  // Snapshots bound the log, which libraft keeps on disk and in memory. Every
  // node takes one once `snapshot_threshold` entries OR
  // `snapshot_threshold_bytes` bytes of entries have been applied since its
  // last snapshot — AND the entries applied since then amount to at least
  // `snapshot_growth_percent` % of that last snapshot's size, so a large state
  // is not encoded again after a small fraction of it changed: the snapshot
  // work per command stays constant as the state grows (Redis's
  // auto-aof-rewrite-percentage). Restart replays count; a restored or
  // installed snapshot starts the count again. The log then keeps at most
  // `snapshot_trailing` entries AND about `snapshot_trailing_bytes` (at the
  // average entry size since the previous snapshot) behind it, so slightly
  // lagging followers need no snapshot. Per node the log in memory stays
  // below about max(snapshot_threshold_bytes, growth × last snapshot size) +
  // snapshot_trailing_bytes + what is in flight; on disk up to about one
  // threshold more (libraft deletes whole segments), plus its preallocated
  // 8 MiB open segments and the last two snapshots (docs/operations.md). The
  // byte threshold must be at least 1 MiB and at least `max_entry_bytes`; the
  // trailing bytes must not exceed it; `snapshot_trailing` must be at least
  // 1; the growth is 0 (off) to 10000 %.
  std::uint64_t snapshot_threshold = 8192;
  std::uint64_t snapshot_trailing = 2048;
  std::uint64_t snapshot_threshold_bytes = std::uint64_t{64} << 20;
  std::uint64_t snapshot_trailing_bytes = std::uint64_t{16} << 20;
  unsigned snapshot_growth_percent = 100;

  // Where a snapshot is encoded. true (the default): the loop thread only
  // forks; a child process — a copy-on-write view of the state frozen at the
  // snapshot index — encodes it into memory the node then writes, while the
  // node keeps applying. The loop-thread pause is the fork, about the copy
  // of the page tables: 8 ms for a 180 MiB node on the development machine
  // (docs/performance.md). false, or when fork() fails, or in
  // ThreadSanitizer builds: encoded on the loop thread, which stops applying
  // for as long as that takes. See docs/operations.md, "Snapshots",
  // for what the child may do and the memory it costs.
  bool snapshot_in_child = true;

  // Group commit: commands queued while earlier entries are in flight are packed
  // into entries of at most `max_entry_bytes`, with at most
  // `max_entries_in_flight` entries appended but not yet applied.
  std::size_t max_entry_bytes = 1u << 20;
  unsigned max_entries_in_flight = 16;

  // The peer channel refuses nodes of another cluster. Every member must use
  // the same values.
  std::string cluster_id = "catga";
  // The cluster secret. Set: a connection to the Raft port or the peer
  // channel is served only after both ends proved they hold it (HMAC-SHA256
  // over fresh nonces from both sides, both node ids, the cluster id and the
  // direction; the secret itself never travels). Empty: insecure mode — both
  // ports accept anyone who can reach them, and the node says so in a
  // warning at start. At least 16 bytes when set.
  std::string peer_secret;
  // Further secrets accepted from peers, never used to prove this node: a
  // secret rotates without stopping the cluster (docs/security.md, "Changing
  // the secret"). At most 8, each at least 16 bytes; needs `peer_secret`.
  std::vector<std::string> accepted_peer_secrets;
  // Instead of the two above: a file holding them — its first line is
  // `peer_secret`, each further non-empty line one of
  // `accepted_peer_secrets` (same bounds). Read at start and again, for new
  // connections, by reload_cluster_tls() (SIGHUP): a secret rotates without a
  // restart. A file that does not read on a reload keeps the previous secrets.
  std::filesystem::path peer_secret_file;
  // A connection to the Raft or peer port that has not completed the
  // handshake within this bound is dropped (one rate-limited log line).
  std::chrono::milliseconds peer_handshake_timeout{5000};
  // Mutual TLS 1.3 on the Raft port (docs/security.md): all three PEM files
  // or none. The CA file holds the cluster's CA, the only one trusted; this
  // node's certificate must be signed by it and carry the subject common
  // name "node-<node_id>", and so must every peer's — a node holding a valid
  // certificate for id 2 cannot pose as id 3. The files are read again for
  // new connections when they change (certificates reload without a
  // restart). The handshake shares `peer_handshake_timeout`. With a
  // `peer_secret` as well, the secret's exchange runs inside TLS (both must
  // hold); TLS alone is enough to leave insecure mode.
  std::filesystem::path tls_ca_file;
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  // Optional, with TLS: a PEM file of certificate revocation lists from the
  // cluster CA. Every handshake on the Raft port and the peer channel then
  // refuses a revoked certificate (and any certificate once the list is past
  // its next update: publish a fresh one in time). Reloaded like the others.
  std::filesystem::path tls_crl_file;

  // Tracing (catga/tracing.hpp; catga::otel makes one with OpenTelemetry):
  // the spans of the forward hop (on a follower) and of the apply (on the
  // leader) of every command that arrives with a trace context. nullptr (the
  // default): no spans, no cost beyond one pointer test per command.
  std::shared_ptr<Tracer> tracer;

  // True when the three TLS files are set.
  bool tls_enabled() const noexcept {
    return !tls_ca_file.empty() && !tls_cert_file.empty() && !tls_key_file.empty();
  }

  // Checks every field; the error names the offending one.
  Result<void> validate() const;
};

enum class NodeRole : std::uint8_t { unavailable, follower, candidate, leader };

CATGA_EXPORT std::string_view to_string(MemberRole role) noexcept;
CATGA_EXPORT std::string_view to_string(NodeRole role) noexcept;

struct MemberStatus {
  Member member;
  // Leader only: time since this member last answered, if ever.
  std::optional<std::chrono::milliseconds> last_contact;
};

// What a member announced, through the log, that its build can apply
// (docs/operations.md, "Rolling upgrades").
struct MemberAnnouncement {
  std::uint64_t id = 0;
  std::uint32_t min_format = 0;  // the apply formats its build implements
  std::uint32_t max_format = 0;
  std::vector<std::string> commands;  // wire names it has handlers for
  std::vector<std::string> events;
};

// Monotonic counters since the node started.
struct NodeCounters {
  std::uint64_t entries_appended = 0;   // log entries this node appended as leader (group commits)
  std::uint64_t records_appended = 0;   // commands and events packed into them (÷ entries = batch size)
  std::uint64_t commands_forwarded = 0; // sent to the leader over the peer channel
  std::uint64_t commands_retried = 0;   // attempts after the first (leader change, broken connection)
  std::uint64_t leader_changes = 0;     // times a leader other than the last one known took over (not the first one)
  std::uint64_t snapshots_taken = 0;    // snapshots this node wrote of its own state
  std::uint64_t snapshots_installed = 0;// snapshots restored (at start or received from a leader)
  std::chrono::microseconds snapshot_encode_time{0};  // encoding the state for the last snapshot taken (in the child, if forked)
  std::chrono::microseconds snapshot_pause{0};        // the loop thread's part of it: the fork, or the whole encode
  std::chrono::microseconds snapshot_pause_max{0};    // the longest such pause since the node started
  std::uint64_t snapshot_bytes = 0;                   // size of the last snapshot written or restored
  std::uint64_t snapshots_in_child = 0;               // snapshots encoded by a forked child (of snapshots_taken)
  std::uint64_t snapshot_write_failures = 0;          // snapshots libraft could not write (a full disk; it retries them)
  std::uint64_t snapshots_sent = 0;          // snapshots sent to followers (installs; one at a time per follower)
  std::uint64_t snapshot_sends_skipped = 0;  // sends refused because one to that follower was still on its way
};

struct NodeStatus {
  std::uint64_t id = 0;
  std::string address;
  NodeRole role = NodeRole::unavailable;
  std::uint64_t term = 0;
  std::uint64_t leader_id = 0;  // 0 when unknown
  std::string leader_address;
  std::uint64_t commit_index = 0;
  std::uint64_t applied_index = 0;
  std::uint64_t last_snapshot_index = 0;
  // Bytes of log entries applied since the last snapshot (a snapshot is due
  // when this reaches ClusterOptions::snapshot_threshold_bytes and the growth
  // percentage of the last snapshot's size).
  std::uint64_t bytes_since_snapshot = 0;
  // Follower: time since it last heard from the leader (empty elsewhere).
  std::optional<std::chrono::milliseconds> leader_last_contact;
  // Leader only: true once a barrier of its own term has committed, i.e. it has
  // applied everything earlier leaders committed and can serve.
  bool ready = false;
  std::vector<MemberStatus> members;
  // The announcements in the replicated state, ascending ids (a member
  // without one has not caught up since it first started), and the apply
  // format the cluster uses. Empty / 0 without a Raft log.
  std::vector<MemberAnnouncement> announcements;
  std::uint32_t apply_format = 0;
  // Non-empty when the node stopped itself (e.g. an unreadable entry).
  std::string failure;
  NodeCounters counters;
};

// Re-reads now, for new connections, the TLS files (CA, certificate, key,
// CRL) and the peer secret files (`peer_secret_file`) of every cluster node
// of this process: what SIGHUP does in
// hosting::serve_until_signal. Connections already up keep their session.
// One line per set of files: reloaded, or why not (the previous credentials
// or secrets stay). Empty when no node of this process uses TLS or a secret
// file. Any thread.
CATGA_EXPORT std::vector<std::string> reload_cluster_tls();

}  // namespace catga
