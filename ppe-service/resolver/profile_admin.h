#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/admin_input.h"
#include "ppe/config/v1/config.pb.h"
#include "ppe/v1/admin.pb.h"

namespace ppe::resolver {

// The CPT lifecycle as the Admin API drives it. Every call writes the durable
// registry, so it blocks: run it off the gRPC threads.
class ProfileAdmin {
 public:
  struct Options {
    // Each configured service and the zone it is in ("video" ->
    // "cdn.example.test."); a service in several zones is issued in the first.
    ServiceZones services{};
    // How long VMs of an invalidated profile keep running (longer than the
    // TTL their addresses were handed out with).
    absl::Duration drain = absl::Seconds(60);
  };
  // The zones' services and registry.drain_s.
  static Options OptionsFromConfig(const ppe::config::v1::PpeConfig& config);

  ProfileAdmin(Options options, const cpt::CptCodec& codec, registry::Registry& registry,
               const Clock& clock)
      : options_(std::move(options)), codec_(codec), registry_(registry), clock_(clock) {}

  // Attributes -> CPT and tagged hostname; registers the profile (no VM until
  // the first query). Idempotent for the same attributes.
  absl::StatusOr<ppe::v1::IssueCptResponse> IssueCpt(const ppe::v1::IssueCptRequest& request);
  // New attributes for a client: a new CPT; the old one is invalidated and its
  // VMs drain. NOT_FOUND if the old CPT is not an active profile.
  absl::StatusOr<ppe::v1::IssueCptResponse> UpdateAttributes(
      const ppe::v1::UpdateAttributesRequest& request);
  absl::StatusOr<ppe::v1::InvalidateProfileResponse> Invalidate(
      const ppe::v1::InvalidateProfileRequest& request);
  // The services Admin requests may name (admin_input.h's checks take them).
  const ServiceZones& services() const { return options_.services; }

 private:
  absl::StatusOr<ppe::v1::IssueCptResponse> Issue(const std::string& service,
                                                  const ppe::v1::Attributes& attributes);

  const Options options_;
  const cpt::CptCodec& codec_;
  registry::Registry& registry_;
  const Clock& clock_;
};

}  // namespace ppe::resolver
