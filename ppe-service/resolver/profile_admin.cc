#include "ppe-service/resolver/profile_admin.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/attributes_proto.h"
#include "ppe-service/resolver/admin_input.h"

namespace ppe::resolver {

ProfileAdmin::Options ProfileAdmin::OptionsFromConfig(const ppe::config::v1::PpeConfig& config) {
  Options o{.drain = absl::Seconds(config.registry().drain_s())};
  for (const auto& z : config.zones()) {
    for (const auto& s : z.services()) o.services.emplace(s.name(), z.name());
  }
  return o;
}

absl::StatusOr<ppe::v1::IssueCptResponse> ProfileAdmin::Issue(const std::string& service_name,
                                                              const ppe::v1::Attributes& a) {
  std::string service = absl::AsciiStrToLower(service_name);
  auto zone = options_.services.find(service);
  if (zone == options_.services.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown service '", LogSafe(service_name), "'"));
  }
  if (a.region().empty()) return absl::InvalidArgumentError("attributes.region is required");
  PPE_RETURN_IF_ERROR(CheckAttributes(a));
  cpt::Attributes attributes = cpt::Canonicalize(cpt::AttributesFromProto(a));
  std::string tag = codec_.Encode(attributes);
  PPE_ASSIGN_OR_RETURN(bool created,
                       registry_.RegisterProfile(tag, attributes, "admin", clock_.Now()));
  ppe::v1::IssueCptResponse out;
  out.set_created(created);
  out.set_cpt(tag);
  std::string zone_name = zone->second;
  zone_name.pop_back();
  out.set_hostname(absl::StrCat(tag, ".", service, ".", zone_name));
  out.set_fingerprint(cpt::CptCodec::Fingerprint(tag));
  if (created) {
    spdlog::info("profile {} issued (region {})", out.fingerprint(), LogSafe(attributes.region));
  }
  return out;
}

absl::StatusOr<ppe::v1::IssueCptResponse> ProfileAdmin::IssueCpt(
    const ppe::v1::IssueCptRequest& request) {
  return Issue(request.service(), request.attributes());
}

absl::StatusOr<ppe::v1::IssueCptResponse> ProfileAdmin::UpdateAttributes(
    const ppe::v1::UpdateAttributesRequest& request) {
  absl::StatusOr<std::string> old_tag = codec_.Parse(request.cpt());
  if (!old_tag.ok() || !registry_.IsActive(*old_tag)) {
    return absl::NotFoundError("no active profile with that CPT");
  }
  absl::StatusOr<ppe::v1::IssueCptResponse> issued = Issue(request.service(), request.attributes());
  if (!issued.ok()) return issued;
  if (issued->cpt() == *old_tag) return issued;  // same attributes: nothing changes
  absl::Time now = clock_.Now();
  if (absl::Status s =
          registry_.InvalidateProfile(*old_tag, now, now + options_.drain, issued->cpt());
      !s.ok()) {
    return s;
  }
  spdlog::info("profile {} replaced by {}", cpt::CptCodec::Fingerprint(*old_tag),
               issued->fingerprint());
  return issued;
}

absl::StatusOr<ppe::v1::InvalidateProfileResponse> ProfileAdmin::Invalidate(
    const ppe::v1::InvalidateProfileRequest& request) {
  absl::StatusOr<std::string> tag = codec_.Parse(request.cpt());
  if (!tag.ok() || !registry_.GetProfile(*tag)) return absl::NotFoundError("no such profile");
  absl::Time now = clock_.Now();
  PPE_RETURN_IF_ERROR(registry_.InvalidateProfile(*tag, now, now + options_.drain));
  ppe::v1::InvalidateProfileResponse out;
  out.set_vms_to_release(static_cast<int32_t>(registry_.ListVms(*tag).size()));
  spdlog::info("profile {} invalidated; {} VMs drain", cpt::CptCodec::Fingerprint(*tag),
               out.vms_to_release());
  return out;
}

}  // namespace ppe::resolver
