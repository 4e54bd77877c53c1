#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ppe::dns {

// Where a query name sits in one zone:
//   <zone>                  apex
//   <service>.<zone>        untagged
//   <label>.<service>.<zone> tagged (label is a CPT candidate, not yet verified)
//   anything else under the zone: other (no records); outside the zone: outside.
struct ParsedName {
  enum class Kind { kOutside, kApex, kUntagged, kTagged, kOther };
  Kind kind = Kind::kOutside;
  std::string service;    // lowercase, for kUntagged and kTagged
  std::string cpt_label;  // lowercase, for kTagged
};

// Lowercases ASCII and adds the trailing dot if missing ("A.b" -> "a.b.").
std::string CanonicalName(absl::string_view name);

class NameParser {
 public:
  // `zone` in any case, with or without the trailing dot; `services` are labels.
  NameParser(absl::string_view zone, std::vector<std::string> services);

  ParsedName Parse(absl::string_view qname) const;
  const std::string& zone() const { return zone_; }

 private:
  bool IsService(absl::string_view label) const;

  std::string zone_;  // canonical, with trailing dot
  std::vector<std::string> services_;
};

}  // namespace ppe::dns
