#include "ppe-service/common/log.h"

#include <string>
#include "absl/strings/string_view.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace ppe {

void InitLogging(absl::string_view program, absl::string_view level) {
  auto logger = spdlog::get(std::string(program));
  if (!logger) logger = spdlog::stderr_color_mt(std::string(program));
  spdlog::set_default_logger(logger);
  auto parsed = spdlog::level::from_str(std::string(level));
  if (level.empty() || (parsed == spdlog::level::off && level != "off")) {
    parsed = spdlog::level::info;
  }
  spdlog::set_level(parsed);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
}

}  // namespace ppe
