#include "ppe-service/forecast/json_report.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ppe::forecast {

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.17g", v);
}

std::string JsonArray(const std::vector<double>& v) {
  std::vector<std::string> parts;
  parts.reserve(v.size());
  for (double x : v) parts.push_back(JsonNumber(x));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

std::string ModelReportJson(const Model& model, const Forecast& forecast, int nobs,
                            const std::vector<std::string>& extra) {
  std::vector<std::string> params;
  for (const auto& [name, value] : model.Parameters()) {
    params.push_back(absl::StrCat(JsonString(name), ": ", JsonNumber(value)));
  }
  std::vector<std::string> members = {
      absl::StrCat("\"model\": ", JsonString(model.Name())),
      absl::StrCat("\"family\": ", JsonString(model.Family())),
      absl::StrCat("\"nobs\": ", nobs),
      absl::StrCat("\"parameters\": {", absl::StrJoin(params, ", "), "}"),
      absl::StrCat("\"loglik\": ", JsonNumber(model.LogLikelihood())),
      absl::StrCat("\"aicc\": ", JsonNumber(model.Aicc())),
      absl::StrCat("\"sigma2\": ", JsonNumber(model.Sigma2())),
      absl::StrCat("\"level\": ", JsonNumber(forecast.level)),
      absl::StrCat("\"mean\": ", JsonArray(forecast.mean)),
      absl::StrCat("\"lower\": ", JsonArray(forecast.lower)),
      absl::StrCat("\"upper\": ", JsonArray(forecast.upper)),
  };
  members.insert(members.end(), extra.begin(), extra.end());
  return absl::StrCat("{\n  ", absl::StrJoin(members, ",\n  "), "\n}\n");
}

}  // namespace ppe::forecast
