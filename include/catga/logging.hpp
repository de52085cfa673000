// catga/logging.hpp — the library's own log: one logger named "catga",
// writing to standard error (standard output stays the application's), as
// text lines or as one JSON object per line. An application may write its own
// lines to it. Thread-safe.
#pragma once

#include <string_view>

#include "catga/export.hpp"

namespace catga {

enum class LogLevel : unsigned char { trace, debug, info, warn, error, off };

// Sets the least severe level the library logs (default: info).
CATGA_EXPORT void set_log_level(LogLevel level) noexcept;
// "trace", "debug", "info", "warn", "error", "off"; false if unknown.
CATGA_EXPORT bool parse_log_level(std::string_view name, LogLevel& out) noexcept;

// text (default): "[2026-11-30 02:40:00.123] [catga] [info] message".
// json: one object per line, for log collectors:
//   {"time":"2026-11-30T02:40:00.123456Z","level":"info","logger":"catga","message":"..."}
// (UTC; the message JSON-escaped, invalid UTF-8 replaced by U+FFFD).
enum class LogFormat : unsigned char { text, json };
CATGA_EXPORT void set_log_format(LogFormat format) noexcept;
// "text", "json"; false if unknown.
CATGA_EXPORT bool parse_log_format(std::string_view name, LogFormat& out) noexcept;

// Writes one line to the library's log at `level` (dropped below the level
// set with set_log_level).
CATGA_EXPORT void log_message(LogLevel level, std::string_view message) noexcept;

}  // namespace catga
