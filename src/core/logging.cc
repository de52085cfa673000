#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <ctime>
#include <memory>
#include <string>

#include "catga/logging.hpp"
#include "core/log.hpp"

namespace catga {
namespace internal {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("catga", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    l->set_level(spdlog::level::info);
    return l;
  }();
  return *logger;
}

}  // namespace internal

namespace {
constexpr std::array<std::string_view, 6> kNames = {"trace", "debug", "info", "warn", "error", "off"};
constexpr std::array<spdlog::level::level_enum, 6> kLevels = {spdlog::level::trace, spdlog::level::debug,
                                                              spdlog::level::info,  spdlog::level::warn,
                                                              spdlog::level::err,   spdlog::level::off};

// Appends `text` as the inside of a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
void append_json_escaped(std::string_view text, spdlog::memory_buf_t& out) {
  auto put = [&out](std::string_view s) { out.append(s.data(), s.data() + s.size()); };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      const char escaped[2] = {'\\', static_cast<char>(c)};
      put({escaped, 2});
      ++i;
    } else if (c < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      const char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      put({escaped, 6});
      ++i;
    } else if (c < 0x80) {
      put(text.substr(i, 1));
      ++i;
    } else {
      // The length of a valid sequence starting here, or 0.
      std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
      if (n == 0 || i + n > text.size()) n = 0;
      for (std::size_t k = 1; k < n; ++k) {
        if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) n = 0;
      }
      if (n == 3) {
        const auto c1 = static_cast<unsigned char>(text[i + 1]);
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) n = 0;  // overlong, surrogate
      } else if (n == 4) {
        const auto c1 = static_cast<unsigned char>(text[i + 1]);
        if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) n = 0;  // overlong, beyond U+10FFFF
      }
      if (n == 0) {
        put("\\ufffd");
        ++i;
      } else {
        put(text.substr(i, n));
        i += n;
      }
    }
  }
}

// One JSON object per line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds).count();
    const std::time_t t = seconds.count();
    std::tm utc{};
    gmtime_r(&t, &utc);
    char time[40];
    const std::size_t n = std::strftime(time, sizeof time, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(time + n, sizeof time - n, ".%06lldZ", static_cast<long long>(micros));
    auto put = [&dest](std::string_view s) { dest.append(s.data(), s.data() + s.size()); };
    put(R"({"time":")");
    put(time);
    put(R"(","level":")");
    put(kNames[static_cast<std::size_t>(level_of(msg.level))]);
    put(R"(","logger":")");
    append_json_escaped(std::string_view(msg.logger_name.data(), msg.logger_name.size()), dest);
    put(R"(","message":")");
    append_json_escaped(std::string_view(msg.payload.data(), msg.payload.size()), dest);
    put("\"}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }

 private:
  static LogLevel level_of(spdlog::level::level_enum level) {
    for (std::size_t i = 0; i < kLevels.size(); ++i) {
      if (kLevels[i] == level) return static_cast<LogLevel>(i);
    }
    return LogLevel::error;  // critical
  }
};

}  // namespace

void set_log_level(LogLevel level) noexcept { internal::log().set_level(kLevels[static_cast<std::size_t>(level)]); }

void set_log_format(LogFormat format) noexcept {
  try {
    if (format == LogFormat::json) {
      internal::log().set_formatter(std::make_unique<JsonFormatter>());
    } else {
      internal::log().set_formatter(std::make_unique<spdlog::pattern_formatter>());
    }
  } catch (...) {
    // Out of memory: the log keeps its format.
  }
}

bool parse_log_format(std::string_view name, LogFormat& out) noexcept {
  if (name == "text") out = LogFormat::text;
  else if (name == "json") out = LogFormat::json;
  else return false;
  return true;
}

void log_message(LogLevel level, std::string_view message) noexcept {
  if (level == LogLevel::off) return;
  try {
    internal::log().log(kLevels[static_cast<std::size_t>(level)], "{}", message);
  } catch (...) {
    // A log line is never worth an exception.
  }
}


bool parse_log_level(std::string_view name, LogLevel& out) noexcept {
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

}  // namespace catga
