#pragma once

#include <maxminddb.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/cpt/region_table.h"

namespace ppe::cpt {

// A MaxMind DB file (GeoIP2/GeoLite2 or the operator's own) read with
// libmaxminddb: the region of an address is the string at `path` in its
// record ("country.iso_code" by default). Memory-mapped and read-only, so
// lookups from any thread are safe.
class GeoIpDb {
 public:
  static absl::StatusOr<std::unique_ptr<GeoIpDb>> Open(const std::string& file,
                                                       const std::string& path);
  ~GeoIpDb();
  GeoIpDb(const GeoIpDb&) = delete;
  GeoIpDb& operator=(const GeoIpDb&) = delete;

  // The region for the prefix's address, or nullopt when the database has none.
  std::optional<std::string> Lookup(const Prefix& client) const;

 private:
  GeoIpDb() = default;
  MMDB_s db_{};
  std::vector<std::string> path_;
  bool open_ = false;
};

}  // namespace ppe::cpt
