#include "ppe-service/resolver/admin_input.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::resolver {
namespace {

bool AllowedChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == ':';
}

absl::Status CheckAttribute(absl::string_view field, absl::string_view value) {
  if (value.size() > kMaxAttributeBytes) {
    return absl::InvalidArgumentError(absl::StrCat("attributes.", field, " is ", value.size(),
                                                   " bytes; the limit is ", kMaxAttributeBytes));
  }
  for (char c : value) {
    if (!AllowedChar(c)) {
      return absl::InvalidArgumentError(absl::StrCat("attributes.", field, " '", LogSafe(value),
                                                     "' has a character outside [A-Za-z0-9._:-]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckAttributes(const ppe::v1::Attributes& a) {
  for (auto [field, value] : {std::pair<absl::string_view, absl::string_view>{"region", a.region()},
                              {"device_class", a.device_class()},
                              {"service_tier", a.service_tier()},
                              {"time_bucket", a.time_bucket()},
                              {"request_pattern", a.request_pattern()}}) {
    PPE_RETURN_IF_ERROR(CheckAttribute(field, value));
  }
  return absl::OkStatus();
}

absl::Status CheckService(const ServiceZones& services, absl::string_view service) {
  if (services.contains(absl::AsciiStrToLower(service))) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("unknown service '", LogSafe(service), "'"));
}

absl::Status CheckLimitsRequest(const ServiceZones& services,
                                const ppe::v1::SetProfileLimitsRequest& request) {
  PPE_RETURN_IF_ERROR(CheckService(services, request.service()));
  if (request.cpt().size() > kMaxNameBytes) return absl::InvalidArgumentError("cpt is too long");
  if (request.min_vms() < 0 || request.max_vms() < 0 || request.min_vms() > kMaxVmsLimit ||
      request.max_vms() > kMaxVmsLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_vms and max_vms must be within 0..", kMaxVmsLimit));
  }
  return absl::OkStatus();
}

absl::Status CheckReport(const ServiceZones& services,
                         const ppe::v1::ReportDemandRequest& request) {
  if (request.entries_size() > kMaxReportEntries) {
    return absl::InvalidArgumentError(absl::StrCat("a report holds at most ", kMaxReportEntries,
                                                   " entries, not ", request.entries_size()));
  }
  for (const auto& e : request.entries()) {
    PPE_RETURN_IF_ERROR(CheckService(services, e.service()));
    if (e.cpt().size() > kMaxNameBytes) return absl::InvalidArgumentError("cpt is too long");
    if (e.requests() <= 0 || e.requests() > kMaxReportedRequests) {
      return absl::InvalidArgumentError(absl::StrCat("requests must be within 1..",
                                                     kMaxReportedRequests, ", not ", e.requests()));
    }
  }
  return absl::OkStatus();
}

}  // namespace ppe::resolver
