// Included first by every translation unit extracted from the docs: the
// whole public API and the standard headers a reader takes for granted.
#pragma once

#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include "catga/application.hpp"
#include "catga/asio.hpp"
#include "catga/backup.hpp"
#include "catga/behavior.hpp"
#include "catga/hosting.hpp"
#include "catga/http.hpp"
#include "catga/logging.hpp"
#include "catga/metrics.hpp"
