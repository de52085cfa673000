// ApplicationAccess: the library's and the tests' way to an Application's
// internals (its mediator and its engine), which the public header keeps
// private. Never part of the public API.
#pragma once

#include <memory>

#include "catga/application.hpp"
#include "core/replicator.hpp"

namespace catga::internal {

struct ApplicationAccess {
  static detail::Mediator& mediator(Application& app) noexcept { return *app.mediator_; }
  // Null in memory.
  static Replicator* replicator(Application& app) noexcept { return app.impl_->replicator.get(); }
};

inline detail::Mediator& mediator_of(Application& app) noexcept { return ApplicationAccess::mediator(app); }

}  // namespace catga::internal
