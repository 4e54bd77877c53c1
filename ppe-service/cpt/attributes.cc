#include "ppe-service/cpt/attributes.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ppe::cpt {
namespace {

std::string CanonicalField(const std::string& raw, const char* fallback) {
  std::string out;
  for (char c : absl::StripAsciiWhitespace(raw)) {
    c = absl::ascii_tolower(static_cast<unsigned char>(c));
    bool ok =
        absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    out.push_back(ok ? c : '_');
  }
  return out.empty() ? std::string(fallback) : out;
}

}  // namespace

Attributes Canonicalize(Attributes in) {
  Attributes defaults;
  return Attributes{
      .region = CanonicalField(in.region, defaults.region.c_str()),
      .device_class = CanonicalField(in.device_class, defaults.device_class.c_str()),
      .service_tier = CanonicalField(in.service_tier, defaults.service_tier.c_str()),
      .time_bucket = CanonicalField(in.time_bucket, defaults.time_bucket.c_str()),
      .request_pattern = CanonicalField(in.request_pattern, defaults.request_pattern.c_str()),
  };
}

std::string CanonicalEncoding(const Attributes& a) {
  return absl::StrCat("region=", a.region, ";device=", a.device_class, ";tier=", a.service_tier,
                      ";time=", a.time_bucket, ";pattern=", a.request_pattern);
}

}  // namespace ppe::cpt
