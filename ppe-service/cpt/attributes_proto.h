#pragma once

// Attributes <-> their proto messages: ppe.v1.Attributes (the Admin API) and
// ppe.registry.v1.Attributes (the stored profile) have the same five fields.
// Templates, so ppe_cpt does not link the protos: the caller's target does.

#include "ppe-service/cpt/attributes.h"

namespace ppe::cpt {

// Copies the five fields as they are (no canonicalisation).
template <typename AttributesProto>
void AttributesToProto(const Attributes& in, AttributesProto* out) {
  out->set_region(in.region);
  out->set_device_class(in.device_class);
  out->set_service_tier(in.service_tier);
  out->set_time_bucket(in.time_bucket);
  out->set_request_pattern(in.request_pattern);
}

// Copies the five fields as they are: an empty field stays empty (Canonicalize
// gives it its default).
template <typename AttributesProto>
Attributes AttributesFromProto(const AttributesProto& in) {
  return {.region = in.region(),
          .device_class = in.device_class(),
          .service_tier = in.service_tier(),
          .time_bucket = in.time_bucket(),
          .request_pattern = in.request_pattern()};
}

}  // namespace ppe::cpt
