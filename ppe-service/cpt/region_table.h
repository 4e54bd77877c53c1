#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::cpt {

// An IPv4 or IPv6 prefix. IPv4 is kept as an IPv4-mapped IPv6 address, so one
// longest-prefix match covers both families.
struct Prefix {
  std::array<uint8_t, 16> address{};
  int length = 0;  // in the address's own family (0..32 or 0..128)
  bool v4 = false;

  // "10.1.2.0/24", "2001:db8::/32", or a bare address (full length).
  static absl::StatusOr<Prefix> Parse(absl::string_view text);
  bool Contains(const Prefix& other) const;  // other's address lies inside this prefix
};

class GeoIpDb;

// CIDR -> region, longest prefix wins; then, for addresses no rule covers, an
// optional MaxMind database. Built once from the config.
class RegionTable {
 public:
  RegionTable();
  ~RegionTable();
  absl::Status Add(absl::string_view cidr, std::string region);
  void SetGeoIp(std::unique_ptr<GeoIpDb> db);
  // Region of the client prefix's address, or "unknown".
  std::string Lookup(const Prefix& client) const;

  // The region, and the shortest prefix of the client's address that the
  // table maps wholly to it (the ECS scope an answer may carry): the matched
  // rule's length, made longer where a more specific rule for another region
  // lies inside it. Where no rule matched (MaxMind or "unknown"),
  // `default_length` (in the client's family) made longer likewise.
  struct Match {
    std::string region;
    int scope = 0;
  };
  Match LookupWithScope(const Prefix& client, int default_length) const;
  size_t size() const { return rules_.size(); }

 private:
  struct Rule {
    Prefix prefix;
    std::string region;
  };
  std::vector<Rule> rules_;  // sorted by descending prefix length
  std::unique_ptr<GeoIpDb> geoip_;
};

}  // namespace ppe::cpt
