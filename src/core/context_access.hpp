// CommandContextAccess: how the replicated state machine (and the tests)
// make the CommandContext a command handler gets; the public header keeps
// its constructor private. Never part of the public API.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "catga/context.hpp"

namespace catga::internal {

struct CommandContextAccess {
  // A context for the command applied at (index, term), stamped with the
  // leader's `time`; ids come from `*id_counter` (the state's counter).
  static CommandContext make(std::uint64_t index, std::uint64_t term, Timestamp time,
                             std::uint64_t* id_counter) noexcept {
    return CommandContext(index, term, time, id_counter);
  }
  // The events the command's handler raised, not yet delivered.
  static std::vector<std::unique_ptr<detail::PendingEvent>>& pending_events(CommandContext& ctx) noexcept {
    return ctx.pending_events();
  }
};

}  // namespace catga::internal
