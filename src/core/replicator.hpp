// What core's Application is made of behind its public header: the engine
// that replicates commands (catga::cluster implements it:
// src/cluster/replicated_node.cc), the table of messages by wire name, and
// what an ApplicationBuilder collects before build().
//
// Threading: a Replicator may be called from any thread; every completion
// runs exactly once, on a library thread (the node's loop thread or a worker).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "catga/application.hpp"
#include "core/mediator.hpp"

namespace catga::internal {

// How long Application::take_snapshot and Application::backup wait for the
// snapshot's write (libraft retries a write it cannot start every 5 s).
inline constexpr std::chrono::milliseconds kSnapshotWait{30'000};

// How commands reach the state when the application is not in memory.
class Replicator {
 public:
  virtual ~Replicator() = default;
  using Done = EncodedDone;
  // Replicates a command (or an event published outside a command). On
  // success `encoded_result` is what `encode_result` produced while applying.
  virtual void submit(MessageKind kind, std::string_view wire_name, std::string payload,
                      const CommandOptions& options, Done done) = 0;
  // Who runs a query once the local state satisfies its consistency.
  enum class QueryRunner : std::uint8_t {
    // A callback-style call: `done` runs the query. A read that had to wait
    // completes on a worker (never the loop thread or the peer channel's).
    worker,
    // A blocking call: `done` only wakes the caller, who runs the query on
    // its own thread. It may run on whichever thread the read became servable.
    caller,
  };
  // Completes once local state satisfies `options.consistency`.
  virtual void await_readable(const QueryOptions& options, UniqueFunction<void(Result<void>)> done,
                              QueryRunner runner) = 0;
  // Why a `local` read must not run now, or nothing; any thread, cheap (it
  // guards every local query).
  virtual std::optional<Error> local_read_refusal() const = 0;
  virtual NodeStatus status() const = 0;
  using VoidDone = UniqueFunction<void(Result<void>)>;
  virtual void add_member(Member member, VoidDone done) = 0;
  virtual void assign_role(std::uint64_t id, MemberRole role, VoidDone done) = 0;
  virtual void remove_member(std::uint64_t id, VoidDone done) = 0;
  virtual void transfer_leadership(std::uint64_t to, VoidDone done) = 0;
  // Both wait at most `wait` for the snapshot's write (the library calls 30 s,
  // the HTTP endpoints their request timeout); see RaftNode::take_snapshot.
  virtual void take_snapshot(UniqueFunction<void(Result<std::uint64_t>)> done, std::chrono::milliseconds wait) = 0;
  // The bytes of a backup file (catga/backup.hpp); see Application::backup.
  virtual void backup(UniqueFunction<void(Result<std::string>)> done, std::chrono::milliseconds wait) = 0;
  // Tests: freezes the node's Raft loop for `duration`, as a stopped process
  // would be (its peer channel keeps accepting).
  virtual void pause_for_test(std::chrono::milliseconds duration) = 0;
};

// The encoded path's entries, by wire name.
struct EncodedTable : std::unordered_map<std::string_view, detail::EncodedEntry> {};

enum class Placement : std::uint8_t { default_durable, data_dir, cluster, in_memory };

struct BuildPlan {
  std::unique_ptr<detail::Mediator> mediator;
  EncodedTable encoded;
  std::vector<Error> errors;
  Placement placement = Placement::default_durable;
  std::filesystem::path data_dir;
  ClusterOptions cluster;
};

// What an Application holds besides its mediator.
struct ApplicationImpl {
  std::unique_ptr<Replicator> replicator;  // null in memory
  EncodedTable encoded;
};

}  // namespace catga::internal
