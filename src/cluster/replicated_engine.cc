// The replicated engine catga::cluster plugs into core's Application
// (src/core/replicated_engine.hpp explains the seam).
#include "core/replicated_engine.hpp"

#include "cluster/replicated_node.hpp"

// Exported (the libraries are built with hidden visibility): core's
// Application looks it up across the library boundary.
extern "C" {
extern CATGA_EXPORT const catga::internal::ReplicatedEngineFactory catga_replicated_engine;
}

const catga::internal::ReplicatedEngineFactory catga_replicated_engine = &catga::internal::make_replicated_node;
