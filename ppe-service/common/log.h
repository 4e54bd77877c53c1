#pragma once

// The one logging header: spdlog, configured once by the binary.
#include <string>

#include <spdlog/spdlog.h>

#include "absl/strings/string_view.h"

// Debian's Abseil has its own string_view type (absl::Status::message() returns it).
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace ppe {

// Logs go to stderr (stdout may be a protocol channel, as for pdns's pipe
// connector), named after the program, at a level from the config ("debug",
// "info", "warn", ...; empty or unknown means "info").
void InitLogging(absl::string_view program, absl::string_view level);

// A caller-supplied string fit for a log line or an error message: non-printable
// bytes as \xNN, cut so that this escaped form is at most `max_bytes`, then
// "...(N bytes)" when cut.
std::string LogSafe(absl::string_view text, size_t max_bytes = 96);

}  // namespace ppe
