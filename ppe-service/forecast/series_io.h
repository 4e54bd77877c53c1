#pragma once

// Reading a series for the CLI and the tests: one number per line, or
// `timestamp,count` CSV (the last field is the count; a non-numeric first line
// is a header). Empty fields and "NA" are missing values (NaN).

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::forecast {

absl::StatusOr<std::vector<double>> ParseSeries(absl::string_view text);

// Fills NaNs by linear interpolation (ends: nearest value). Error if all are NaN.
absl::StatusOr<std::vector<double>> FillMissing(std::vector<double> y);

}  // namespace ppe::forecast
