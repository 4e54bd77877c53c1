#include "ppe-service/common/log.h"

#include <algorithm>
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

std::string LogSafe(absl::string_view text, size_t max_bytes) {
  std::string out;
  size_t n = std::min(text.size(), max_bytes);
  out.reserve(n + 16);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  if (text.size() > max_bytes) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace ppe
