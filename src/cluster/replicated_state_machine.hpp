// ReplicatedStateMachine: what every node runs for every committed record —
// decode the envelope, consult the session table (exactly-once), run the
// handler through the mediator under the exclusive state lock, record the
// result, deliver the events it raised. Snapshots carry the user state, the
// library's id counter, the session table and the announcement table (what
// each member can apply: announcement_table.hpp).
//
// Threading: every method runs on the Raft loop thread (RecordStateMachine),
// except admission() and announced(), which any thread may call.
// Queries on other threads read the user state under its shared lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "cluster/announcement_table.hpp"
#include "cluster/session_table.hpp"
#include "core/mediator.hpp"
#include "cluster/raft_node.hpp"
#include "cluster/envelope.hpp"
#include "catga/tracing.hpp"

namespace catga::internal {

// The record a client writes once to open its session.
inline constexpr std::string_view kOpenSessionRecord = "catga.session.open.v1";
// The record an idle client writes to keep its session (tagged with it).
inline constexpr std::string_view kKeepAliveRecord = "catga.session.keepalive.v1";

class ReplicatedStateMachine final : public RecordStateMachine {
 public:
  explicit ReplicatedStateMachine(detail::Mediator& mediator) : mediator_(mediator) {}

  std::string apply(const ApplyInfo& info, std::string_view record) override;
  std::string snapshot() override;
  // The user's state is encoded by msgpack-c's pack (no locks, no I/O).
  bool can_snapshot_in_child() const override { return true; }
  void write_snapshot(detail::SnapshotSink& sink) override;
  Result<void> restore(std::string_view snapshot) override;
  // Decodes the user's state, the session and the announcement tables into
  // new objects; adopt() swaps them in under the locks restore() takes.
  Result<std::unique_ptr<PreparedRestore>> prepare_restore(std::string_view snapshot) override;

  // Loop thread: whether this node leads (for leader-only event handlers).
  void set_leader(bool leader) { leader_ = leader; }
  // Before start: where the leader's apply spans go (nullptr: none).
  void set_tracer(Tracer* tracer) { tracer_ = tracer; }

  // Any thread, on the leader before it appends a command or event: the
  // refusal if some member that announced (or this node, `self`) cannot
  // handle it (AnnouncementTable::refusal).
  std::optional<Error> admission(std::string_view wire_name, MessageKind kind, std::uint64_t self) const;
  // Any thread: whether the table holds exactly `a` for its node.
  bool announced(const Announcement& a) const;
  // Any thread: member `node_id`'s announced data directory identity ("" if
  // it announced none), or nothing if it has no announcement.
  std::optional<std::string> announced_data_dir(std::uint64_t node_id) const;
  // Any thread: the members with an announcement.
  std::vector<std::uint64_t> announced_members() const;
  // Any thread: fills status.announcements and status.apply_format.
  void describe(NodeStatus& status) const;
  // What this node announces (node id aside): its handlers and formats.
  Announcement announcement(std::uint64_t self) const;

  // The apply formats this build implements (kBuildFormats); tests inject
  // another range before the node starts.
  const FormatRange& formats() const { return formats_; }
  void set_formats_for_test(FormatRange formats) { formats_ = formats; }
  // Any thread: the cluster's apply format, and the one every announced
  // member implements (the leader raises the first to the second).
  std::uint32_t cluster_format() const;
  std::uint32_t agreed_format() const;

  // The answer to a command (or keep-alive) whose session the table does not
  // know (expired, evicted, never opened): the command was NOT applied. It is
  // flagged — msgpack [unavailable, message, 1], a shape no handler result
  // has — so the client recognises it without reading the message. It never
  // reaches a caller: the client either resends under a new session or
  // answers "outcome unknown" (see replicated_node.cc).
  static std::string session_unknown_result();
  static bool is_session_unknown(std::string_view encoded);

 private:
  class Prepared;
  void apply_new(const ApplyInfo& info, const EnvelopeView& envelope, std::string& out);
  // An announcement, withdrawal or format record: changes the table, answers.
  std::string apply_membership_record(const ApplyInfo& info, const EnvelopeView& envelope);
  // Throws (stops the node) if this build cannot apply at the cluster's format.
  void check_format(std::uint64_t index) const;
  // Logs, at most once an hour, that keys leave the full key table before
  // their 24 h (SessionTable::keys_evicted_early).
  void warn_keys_evicted_early();

  detail::Mediator& mediator_;
  SessionTable sessions_;
  std::optional<std::chrono::steady_clock::time_point> warned_keys_at_;  // loop thread
  // Written on the loop thread under table_mu_; read there without it.
  AnnouncementTable announcements_;
  mutable std::shared_mutex table_mu_;
  FormatRange formats_ = kBuildFormats;
  bool leader_ = false;
  Tracer* tracer_ = nullptr;  // ClusterOptions::tracer, owned by the node
};

}  // namespace catga::internal
