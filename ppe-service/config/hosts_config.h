#pragma once

#include <string>

#include "absl/status/status.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::config {

// Fills the defaults of the `hosts` section (and hypervisor.host_grace_s /
// host_check_ms) and validates it: unique names, a uri and a region each,
// address pools of configured services that overlap nowhere, every service
// placeable on some host, region distances between two named regions once.
// A config without `hosts` is left as it is (one implicit host).
absl::Status ValidateHosts(ppe::config::v1::PpeConfig& c, const std::string& origin);

}  // namespace ppe::config
