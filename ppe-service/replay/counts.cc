#include "ppe-service/replay/counts.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "ppe-service/forecast/series_io.h"

namespace ppe::replay {

absl::StatusOr<std::vector<double>> ParseCounts(absl::string_view text) {
  absl::StatusOr<std::vector<double>> y = forecast::ParseSeries(text);
  if (!y.ok()) {
    if (y.status().message() == "the series is empty") {
      return absl::InvalidArgumentError("no counts: the file is empty");
    }
    return y.status();
  }
  for (size_t i = 0; i < y->size(); ++i) {
    const double v = (*y)[i];
    if (std::isnan(v))
      return absl::InvalidArgumentError(absl::StrCat("count ", i + 1, " is missing"));
    if (v < 0) {
      return absl::InvalidArgumentError(absl::StrCat("count ", i + 1, " is negative: ", v));
    }
  }
  return y;
}

}  // namespace ppe::replay
