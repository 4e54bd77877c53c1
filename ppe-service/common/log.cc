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
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 24);
  size_t i = 0;
  for (; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    bool plain = c >= 0x20 && c < 0x7f && c != '\\';
    if (out.size() + (plain ? 1 : 4) > max_bytes) break;  // the output is bounded, escapes included
    if (plain) {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  if (i < text.size()) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace ppe
