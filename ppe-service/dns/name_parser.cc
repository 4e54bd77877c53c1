#include "ppe-service/dns/name_parser.h"

#include <algorithm>
#include "absl/strings/string_view.h"

#include "absl/strings/ascii.h"

namespace ppe::dns {

std::string CanonicalName(absl::string_view name) {
  std::string out = absl::AsciiStrToLower(name);
  if (out.empty() || out.back() != '.') out.push_back('.');
  return out;
}

NameParser::NameParser(absl::string_view zone, std::vector<std::string> services)
    : zone_(CanonicalName(zone)) {
  for (auto& s : services) services_.push_back(absl::AsciiStrToLower(s));
}

bool NameParser::IsService(absl::string_view label) const {
  return std::find(services_.begin(), services_.end(), label) != services_.end();
}

ParsedName NameParser::Parse(absl::string_view qname) const {
  ParsedName out;
  std::string name = CanonicalName(qname);
  if (name == zone_) {
    out.kind = ParsedName::Kind::kApex;
    return out;
  }
  // Must end in "." + zone (the root zone "." has every name under it).
  bool under = zone_ == "."
                   ? true
                   : name.size() > zone_.size() &&
                         name.compare(name.size() - zone_.size(), zone_.size(), zone_) == 0 &&
                         name[name.size() - zone_.size() - 1] == '.';
  if (!under) return out;
  absl::string_view rel(name.data(), name.size() - zone_.size() - (zone_ == "." ? 0 : 1));
  if (zone_ == "." && !rel.empty() && rel.back() == '.') rel.remove_suffix(1);
  out.kind = ParsedName::Kind::kOther;
  size_t dot = rel.rfind('.');
  absl::string_view service = dot == absl::string_view::npos ? rel : rel.substr(dot + 1);
  if (!IsService(service)) return out;
  if (dot == absl::string_view::npos) {
    out.kind = ParsedName::Kind::kUntagged;
    out.service = std::string(service);
    return out;
  }
  absl::string_view label = rel.substr(0, dot);
  if (label.empty() || label.find('.') != absl::string_view::npos) return out;
  out.kind = ParsedName::Kind::kTagged;
  out.service = std::string(service);
  out.cpt_label = std::string(label);
  return out;
}

}  // namespace ppe::dns
