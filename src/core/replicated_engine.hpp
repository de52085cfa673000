// The seam between core's Application and the replicated engine that
// catga::cluster provides (a durable node or a cluster member).
//
// Core never names the cluster library: src/core/application.cc refers to
// `catga_replicated_engine` weakly, so a program that only ever builds
// in-memory applications links catga::core alone. catga::cluster defines the
// symbol (src/cluster/replicated_engine.cc), and every program linking it
// keeps it even when nothing else names the cluster: the CMake target
// compiles src/cluster/keep_replicated_engine.cc into each consumer, the
// pkg-config file passes --no-as-needed and --undefined. When it is absent,
// building anything but an in-memory application fails with
// failed_precondition.
#pragma once

#include <memory>

#include "catga/application.hpp"
#include "core/replicator.hpp"

namespace catga::internal {

// Starts the engine for `plan` (any placement but in_memory) around
// `plan.mediator`, which must outlive the result.
using ReplicatedEngineFactory = Result<std::unique_ptr<Replicator>> (*)(BuildPlan& plan);

}  // namespace catga::internal
