#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ppe/v1/admin.pb.h"

namespace ppe::resolver {

// Bounds on what the Admin API accepts (docs/security.md lists them).
inline constexpr size_t kMaxAttributeBytes = 64;  // each attribute string
inline constexpr size_t kMaxNameBytes = 253;      // service names, CPT strings, VM names
inline constexpr int64_t kMaxReportedRequests = 1'000'000'000;  // per entry and report
inline constexpr int kMaxReportEntries = 10'000;
inline constexpr int kMaxVmsLimit = 10'000;  // min_vms / max_vms of SetProfileLimits

// Attribute strings: at most kMaxAttributeBytes of [A-Za-z0-9._:-] each
// (region, device class, tier, time bucket, request pattern); INVALID_ARGUMENT
// naming the field otherwise.
absl::Status CheckAttributes(const ppe::v1::Attributes& attributes);
// The configured services, each with the zone it is in (ProfileAdmin::Options).
using ServiceZones = absl::flat_hash_map<std::string, std::string>;

// A configured service (any case); INVALID_ARGUMENT otherwise.
absl::Status CheckService(const ServiceZones& services, absl::string_view service);
absl::Status CheckLimitsRequest(const ServiceZones& services,
                                const ppe::v1::SetProfileLimitsRequest& request);
// Every entry's service known and 0 < requests <= kMaxReportedRequests, at
// most kMaxReportEntries entries: a report is taken whole or refused.
absl::Status CheckReport(const ServiceZones& services, const ppe::v1::ReportDemandRequest& request);

}  // namespace ppe::resolver
