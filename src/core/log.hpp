// The library's logger ("catga", standard error). Internal, but shared by the
// three libraries: exported from libcatga_core so that libcatga_cluster and
// libcatga_http reach it (no public header declares it).
#pragma once

#include <spdlog/logger.h>

#include "catga/export.hpp"

namespace catga::internal {
CATGA_EXPORT spdlog::logger& log();
}  // namespace catga::internal
