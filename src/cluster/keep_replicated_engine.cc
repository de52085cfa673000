// Compiled into every program that links catga::cluster (an INTERFACE source
// of the target): one reference to the replicated engine, so that the linker
// keeps the cluster library — a member of the static archive, or the shared
// library under --as-needed — even in a program that names nothing else of
// it. Core's Application refers to the engine only weakly
// (src/core/replicated_engine.hpp). Internal linkage: any number of targets
// may compile it.
extern "C" {
extern const void* const catga_replicated_engine;
}

namespace {
[[gnu::used]] const void* const* const keep_replicated_engine = &catga_replicated_engine;
}  // namespace
