#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::replay {

// Request counts per bucket: one count per line, or `timestamp,count` CSV
// (a non-numeric first line is a header). Errors name the offending count:
// no counts, a non-numeric, missing or negative one.
absl::StatusOr<std::vector<double>> ParseCounts(absl::string_view text);

}  // namespace ppe::replay
