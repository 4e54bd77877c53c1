#pragma once

#include <string>

namespace ppe::cpt {

// Client attributes, canonicalised into buckets. Same attributes -> same CPT.
struct Attributes {
  std::string region = "unknown";
  std::string device_class = "unknown";
  std::string service_tier = "standard";
  std::string time_bucket = "any";
  std::string request_pattern = "unknown";

  bool operator==(const Attributes&) const = default;
};

// Lowercases, trims, and replaces empty fields by their defaults. Values are
// limited to [a-z0-9._-] so the canonical encoding is unambiguous and printable.
Attributes Canonicalize(Attributes in);

// "region=eu-west;device=tv;..." in a fixed order: what the keyed hash covers.
std::string CanonicalEncoding(const Attributes& a);

}  // namespace ppe::cpt
