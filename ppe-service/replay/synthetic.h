#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe-service/replay/setup.h"

namespace ppe::replay {

// A population of `n` profiles for the many-tenant replay: profile k (1..n)
// takes the shape of M4 hourly series (k - 1) mod count (its first
// `length` values, scaled to mean 1) and a Zipf size, a mean of
// `largest_mean / k` requests per bucket; each bucket's count is a Poisson
// draw around shape x size (fixed seed), so small profiles are sparse.
// `m4_csv`: the M4 wide CSV (id, then values; short series end early).
absl::StatusOr<std::vector<Profile>> SyntheticPopulation(absl::string_view m4_csv, int n,
                                                         double largest_mean = 1000,
                                                         int length = 700);

}  // namespace ppe::replay
