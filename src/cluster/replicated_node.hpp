// ReplicatedNode: the Replicator of a durable or clustered Application — owns
// the Raft node and is its record state machine (envelopes → mediator).
#pragma once

#include <memory>

#include "catga/application.hpp"
#include "core/replicator.hpp"

namespace catga::internal {

// Starts the node described by `plan` (a single durable node or a cluster
// member) around `plan.mediator`, which must outlive the result.
Result<std::unique_ptr<Replicator>> make_replicated_node(BuildPlan& plan);

}  // namespace catga::internal
