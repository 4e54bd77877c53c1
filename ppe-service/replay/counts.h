#pragma once

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace ppe::replay {

// Request counts per bucket: one count per line, or `timestamp,count` CSV
// (a non-numeric first line is a header). Errors name the offending count:
// no counts, a non-numeric, missing or negative one.
absl::StatusOr<std::vector<double>> ParseCounts(std::string_view text);

}  // namespace ppe::replay
