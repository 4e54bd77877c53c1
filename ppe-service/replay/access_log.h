#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/replay/setup.h"

namespace ppe::replay {

struct LogOptions {
  double bucket_seconds = 60;
  int time_buckets_per_day = 4;               // the config's cpt.time_buckets_per_day
  const cpt::RegionTable* regions = nullptr;  // the config's region rules; null: "unknown"
};

// The device class the replay gives a user agent: "bot", "tablet", "mobile",
// "tv", "desktop", or "unknown". (DNS carries no user agent: in the server
// the device class comes with the CPT its issuer wrote.)
std::string DeviceClass(absl::string_view user_agent);

// One demand series per profile of an Apache/NCSA combined access log, the
// profile derived as the server derives an untagged client's: the client
// address's /24 cohort (the ECS scope its answers are cached under), its
// region from the region table, the time-of-day bucket of the request (UTC),
// and the device class of its user agent. Series run from the log's first
// bucket to its last. Lines that do not parse are skipped and counted in
// `skipped`; a log with no valid line is an error.
absl::StatusOr<std::vector<Profile>> ProfilesFromLog(absl::string_view text,
                                                     const LogOptions& options, int* skipped);

}  // namespace ppe::replay
