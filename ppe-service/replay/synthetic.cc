#include "ppe-service/replay/synthetic.h"

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ppe::replay {

absl::StatusOr<std::vector<Profile>> SyntheticPopulation(absl::string_view m4_csv, int n,
                                                         double largest_mean, int length) {
  std::vector<std::pair<std::string, std::vector<double>>> shapes;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(m4_csv.data(), m4_csv.size()), '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    if (fields.size() < 2) continue;
    std::vector<double> y;
    for (size_t i = 1; i < fields.size() && static_cast<int>(y.size()) < length; ++i) {
      absl::string_view f = absl::StripAsciiWhitespace(fields[i]);
      if (f.size() >= 2 && f.front() == '"') f = f.substr(1, f.size() - 2);
      double v;
      if (f.empty() || !absl::SimpleAtod(f, &v)) break;
      y.push_back(v);
    }
    if (static_cast<int>(y.size()) < length) continue;  // the header, or a short series
    double mean = 0;
    for (double v : y) mean += v / length;
    if (mean <= 0) continue;
    for (double& v : y) v = std::max(0.0, v / mean);
    std::string id(absl::StripAsciiWhitespace(fields[0]));
    id.erase(std::remove(id.begin(), id.end(), '"'), id.end());
    shapes.emplace_back(id, std::move(y));
  }
  if (shapes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no series of at least ", length, " values in the shapes file"));
  }
  std::mt19937_64 rng(20261203);
  std::vector<Profile> out;
  for (int k = 1; k <= n; ++k) {
    const auto& [id, shape] = shapes[(k - 1) % shapes.size()];
    Profile p{.name = absl::StrCat("synthetic-", k, "-", id)};
    const double size = largest_mean / k;
    for (double v : shape) {
      std::poisson_distribution<int64_t> draw(std::max(1e-12, v * size));
      p.demand.push_back(static_cast<double>(draw(rng)));
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace ppe::replay
