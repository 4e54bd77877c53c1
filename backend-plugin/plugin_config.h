#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::plugin {

// Reads the plugin's PluginConfig in protobuf text format, fills defaults and
// validates it; errors name the file, line or field, as ppe-server's do.
absl::StatusOr<ppe::config::v1::PluginConfig> LoadPluginConfig(const std::string& path);
absl::StatusOr<ppe::config::v1::PluginConfig> ParsePluginConfig(const std::string& text,
                                                                const std::string& origin);

}  // namespace ppe::plugin
