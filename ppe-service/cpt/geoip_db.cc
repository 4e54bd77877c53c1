#include "ppe-service/cpt/geoip_db.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ppe::cpt {

absl::StatusOr<std::unique_ptr<GeoIpDb>> GeoIpDb::Open(const std::string& file,
                                                       const std::string& path) {
  std::unique_ptr<GeoIpDb> db(new GeoIpDb());
  int rc = MMDB_open(file.c_str(), MMDB_MODE_MMAP, &db->db_);
  if (rc != MMDB_SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("geoip database ", file, ": ", MMDB_strerror(rc)));
  }
  db->open_ = true;
  for (absl::string_view part : absl::StrSplit(path.empty() ? "country.iso_code" : path, '.')) {
    db->path_.emplace_back(part);
  }
  return db;
}

GeoIpDb::~GeoIpDb() {
  if (open_) MMDB_close(&db_);
}

std::optional<std::string> GeoIpDb::Lookup(const Prefix& client) const {
  sockaddr_storage storage{};
  if (client.v4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    std::memcpy(&sin->sin_addr, &client.address[12], 4);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    std::memcpy(&sin6->sin6_addr, client.address.data(), 16);
  }
  int error = 0;
  MMDB_lookup_result_s result =
      MMDB_lookup_sockaddr(&db_, reinterpret_cast<sockaddr*>(&storage), &error);
  if (error != MMDB_SUCCESS || !result.found_entry) return std::nullopt;
  std::vector<const char*> path;
  for (const std::string& p : path_) path.push_back(p.c_str());
  path.push_back(nullptr);
  MMDB_entry_data_s data;
  if (MMDB_aget_value(&result.entry, &data, path.data()) != MMDB_SUCCESS || !data.has_data ||
      data.type != MMDB_DATA_TYPE_UTF8_STRING) {
    return std::nullopt;
  }
  return std::string(data.utf8_string, data.data_size);
}

}  // namespace ppe::cpt
