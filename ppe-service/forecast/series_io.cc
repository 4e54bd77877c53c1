#include "ppe-service/forecast/series_io.h"

#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ppe::forecast {

absl::StatusOr<std::vector<double>> ParseSeries(absl::string_view text_in) {
  const absl::string_view text(text_in.data(), text_in.size());
  std::vector<double> y;
  int line_no = 0;
  bool first = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    absl::string_view field = line;
    const size_t comma = line.rfind(',');
    if (comma != absl::string_view::npos)
      field = absl::StripAsciiWhitespace(line.substr(comma + 1));
    if (field.size() >= 2 && field.front() == '"' && field.back() == '"') {
      field = field.substr(1, field.size() - 2);
    }
    double v;
    if (field.empty() || field == "NA" || field == "NaN" || field == "nan") {
      if (comma == absl::string_view::npos && field != "NA") {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": not a number"));
      }
      v = std::numeric_limits<double>::quiet_NaN();
    } else if (!absl::SimpleAtod(field, &v) || !std::isfinite(v)) {
      if (first && comma != absl::string_view::npos) {  // CSV header.
        first = false;
        continue;
      }
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ": not a number: '", field, "'"));
    }
    first = false;
    y.push_back(v);
  }
  if (y.empty()) return absl::InvalidArgumentError("the series is empty");
  return y;
}

absl::StatusOr<std::vector<double>> FillMissing(std::vector<double> y) {
  const int n = static_cast<int>(y.size());
  int prev = -1;
  for (int i = 0; i < n; ++i) {
    if (std::isnan(y[i])) continue;
    if (prev < 0) {
      for (int j = 0; j < i; ++j) y[j] = y[i];
    } else {
      for (int j = prev + 1; j < i; ++j) {
        y[j] = y[prev] + (y[i] - y[prev]) * (j - prev) / static_cast<double>(i - prev);
      }
    }
    prev = i;
  }
  if (prev < 0) return absl::InvalidArgumentError("the series has no values");
  for (int j = prev + 1; j < n; ++j) y[j] = y[prev];
  return y;
}

}  // namespace ppe::forecast
