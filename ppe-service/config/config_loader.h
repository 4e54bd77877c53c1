#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::config {

// Reads a PpeConfig in protobuf text format, fills defaults and validates it.
// Errors name the file, line and field ("ppe.conf:12:3: ..." or "zones[0].services[1].
// address_pool: ..."), so a bad config is refused before anything is touched.
absl::StatusOr<ppe::config::v1::PpeConfig> LoadPpeConfig(const std::string& path);
absl::StatusOr<ppe::config::v1::PpeConfig> ParsePpeConfig(const std::string& text,
                                                          const std::string& origin);

}  // namespace ppe::config
