// src/cluster/backup.hpp — the cluster side of catga/backup.hpp: taking a
// backup from a running RaftNode, and forcing a new configuration on a
// survivor (ClusterOptions::force_new_cluster) before its node starts.
#pragma once

#include <chrono>
#include <string>

#include "catga/backup.hpp"
#include "catga/cluster.hpp"
#include "catga/detail/unique_function.hpp"
#include "catga/result.hpp"

namespace catga::internal {

class RaftNode;

// Leader only: takes a snapshot now (RaftNode::take_snapshot), then reads the
// newest snapshot libraft wrote in data_dir — at least as new — and builds the
// backup file's bytes. `done` runs once, on a thread of its own (reading the
// snapshot must not stall the loop). Errors: those of take_snapshot
// (unavailable on a follower, naming the leader; deadline_exceeded when the
// snapshot was not written within `wait`), internal when the snapshot files
// cannot be read.
void take_backup(RaftNode& node, detail::UniqueFunction<void(Result<std::string>)> done,
                 std::chrono::milliseconds wait);

// ClusterOptions::force_new_cluster, before the node opens data_dir: libraft's
// raft_recover with a configuration of this node alone, and a marker for the
// new cluster id. Errors (failed_precondition): nothing to recover (no log),
// the directory is a copy or another node's, the cluster id did not change.
Result<void> force_new_cluster(const ClusterOptions& options);

}  // namespace catga::internal
