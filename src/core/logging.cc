#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <array>

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
}  // namespace

void set_log_level(LogLevel level) noexcept { internal::log().set_level(kLevels[static_cast<std::size_t>(level)]); }

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
