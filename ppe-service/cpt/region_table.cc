#include "ppe-service/cpt/region_table.h"

#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/geoip_db.h"

#include <arpa/inet.h>
#include "absl/strings/string_view.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ppe::cpt {

absl::StatusOr<Prefix> Prefix::Parse(absl::string_view text) {
  std::string addr(text.substr(0, text.find('/')));
  Prefix p;
  in_addr v4;
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1) {
    p.v4 = true;
    p.address[10] = p.address[11] = 0xff;
    std::memcpy(&p.address[12], &v4, 4);
  } else if (inet_pton(AF_INET6, addr.c_str(), p.address.data()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("not an IP prefix: '", text, "'"));
  }
  int max = p.v4 ? 32 : 128;
  p.length = max;
  if (size_t slash = text.find('/'); slash != absl::string_view::npos) {
    if (!absl::SimpleAtoi(text.substr(slash + 1), &p.length) || p.length < 0 || p.length > max) {
      return absl::InvalidArgumentError(absl::StrCat("bad prefix length in '", text, "'"));
    }
  }
  return p;
}

bool Prefix::Contains(const Prefix& other) const {
  if (v4 != other.v4) return false;
  int bits = length + (v4 ? 96 : 0);
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((address[i] & mask) != (other.address[i] & mask)) return false;
  }
  return true;
}

absl::Status RegionTable::Add(absl::string_view cidr, std::string region) {
  PPE_ASSIGN_OR_RETURN(Prefix p, Prefix::Parse(cidr));
  rules_.push_back({p, std::move(region)});
  std::stable_sort(rules_.begin(), rules_.end(), [](const Rule& a, const Rule& b) {
    return a.prefix.length + (a.prefix.v4 ? 96 : 0) > b.prefix.length + (b.prefix.v4 ? 96 : 0);
  });
  return absl::OkStatus();
}

RegionTable::RegionTable() = default;
RegionTable::~RegionTable() = default;

void RegionTable::SetGeoIp(std::unique_ptr<GeoIpDb> db) { geoip_ = std::move(db); }

std::string RegionTable::Lookup(const Prefix& client) const {
  for (const Rule& rule : rules_) {
    if (rule.prefix.Contains(client)) return rule.region;
  }
  if (geoip_) {
    if (std::optional<std::string> region = geoip_->Lookup(client)) return *region;
  }
  return "unknown";
}

namespace {

// Leading bits two addresses share, in their own family.
int CommonBits(const Prefix& a, const Prefix& b) {
  int bits = 0;
  for (int i = 0; i < 16; ++i) {
    uint8_t diff = a.address[i] ^ b.address[i];
    if (diff == 0) {
      bits += 8;
      continue;
    }
    while ((diff & 0x80) == 0) ++bits, diff = static_cast<uint8_t>(diff << 1);
    break;
  }
  return bits - (a.v4 ? 96 : 0);
}

}  // namespace

RegionTable::Match RegionTable::LookupWithScope(const Prefix& client, int default_length) const {
  Match m{.region = "", .scope = default_length};
  for (const Rule& rule : rules_) {
    if (rule.prefix.Contains(client)) {
      m.region = rule.region;
      m.scope = rule.prefix.length;
      break;
    }
  }
  // Rules more specific than the scope that the client is not in but whose
  // range overlaps the client's scope prefix: shorten nothing, lengthen the
  // scope until the prefix excludes them.
  for (const Rule& rule : rules_) {
    if (rule.prefix.v4 != client.v4 || rule.prefix.length <= m.scope) continue;
    if (rule.prefix.Contains(client)) continue;
    int common = CommonBits(rule.prefix, client);
    if (common >= m.scope) m.scope = common + 1;
  }
  if (m.region.empty()) m.region = Lookup(client);
  return m;
}

}  // namespace ppe::cpt
