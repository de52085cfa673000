// The replicated engine catga::cluster plugs into core's Application
// (src/core/replicated_engine.hpp explains the seam).
#include "core/replicated_engine.hpp"

#include "cluster/replicated_node.hpp"

extern "C" {
extern const catga::internal::ReplicatedEngineFactory catga_replicated_engine;
}

const catga::internal::ReplicatedEngineFactory catga_replicated_engine = &catga::internal::make_replicated_node;
