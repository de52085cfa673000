// catga/logging.hpp — the library's own log: one logger named "catga",
// writing to standard error (standard output stays the application's).
// Thread-safe.
#pragma once

#include <string_view>

namespace catga {

enum class LogLevel : unsigned char { trace, debug, info, warn, error, off };

// Sets the least severe level the library logs (default: info).
void set_log_level(LogLevel level) noexcept;
// "trace", "debug", "info", "warn", "error", "off"; false if unknown.
bool parse_log_level(std::string_view name, LogLevel& out) noexcept;

}  // namespace catga
