// The seam between core's Application and the replicated engine that
// catga::cluster provides (a durable node or a cluster member).
//
// Core never names the cluster library: src/core/application.cc refers to
// `catga_replicated_engine` weakly, so a program that only ever builds
// in-memory applications links catga::core alone. catga::cluster defines the
// symbol (src/cluster/replicated_engine.cc) and asks every program linking it
// to keep it (`-Wl,--undefined=catga_replicated_engine`, in its CMake target
// and pkg-config file), so a static link pulls it in even when nothing else
// names it. When it is absent, building anything but an in-memory application
// fails with failed_precondition.
#pragma once

#include <memory>

#include "catga/application.hpp"
#include "core/replicator.hpp"

namespace catga::internal {

// Starts the engine for `plan` (any placement but in_memory) around
// `plan.mediator`, which must outlive the result.
using ReplicatedEngineFactory = Result<std::unique_ptr<detail::Replicator>> (*)(detail::BuildPlan& plan);

}  // namespace catga::internal
