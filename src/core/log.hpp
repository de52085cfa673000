// The library's logger ("catga", standard error). Internal.
#pragma once

#include <spdlog/logger.h>

namespace catga::internal {
spdlog::logger& log();
}  // namespace catga::internal
