#include "backend-plugin/zone_cache.h"

#include <cstdio>
#include <fstream>
#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"

namespace ppe::plugin {

const ZoneCache::Zone* ZoneCache::Snapshot::Find(absl::string_view qname,
                                                 dns::ParsedName& parsed) const {
  for (const Zone& z : zones) {
    parsed = z.parser.Parse(qname);
    if (parsed.kind != dns::ParsedName::Kind::kOutside) return &z;
  }
  return nullptr;
}

const ZoneCache::Zone* ZoneCache::Snapshot::FindByName(absl::string_view zone) const {
  std::string name = dns::CanonicalName(zone);
  for (const Zone& z : zones) {
    if (z.info.name() == name) return &z;
  }
  return nullptr;
}

const ppe::v1::ServiceInfo* ZoneCache::Snapshot::Service(const Zone& zone,
                                                         absl::string_view service) const {
  for (const auto& s : zone.info.services()) {
    if (s.name() == service) return &s;
  }
  return nullptr;
}

std::shared_ptr<const ZoneCache::Snapshot> ZoneCache::Get() const {
  absl::MutexLock lock(&mu_);
  return snapshot_;
}

void ZoneCache::Set(const ppe::v1::ListZonesResponse& zones) {
  auto snap = std::make_shared<Snapshot>();
  for (const auto& info : zones.zones()) {
    std::vector<std::string> services;
    for (const auto& s : info.services()) services.push_back(s.name());
    snap->zones.push_back(Zone{info, dns::NameParser(info.name(), std::move(services))});
  }
  absl::MutexLock lock(&mu_);
  raw_ = zones;
  snapshot_ = std::move(snap);
}

absl::Status ZoneCache::Save(const std::string& path) const {
  std::string bytes;
  {
    absl::MutexLock lock(&mu_);
    raw_.SerializeToString(&bytes);
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status ZoneCache::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("no zone cache at ", path));
  ppe::v1::ListZonesResponse zones;
  if (!zones.ParseFromIstream(&in)) {
    return absl::DataLossError(absl::StrCat("zone cache ", path, " is corrupt"));
  }
  Set(zones);
  return absl::OkStatus();
}

}  // namespace ppe::plugin
