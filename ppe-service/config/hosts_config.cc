#include "ppe-service/config/hosts_config.h"

#include <map>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/config/text_proto.h"
#include "ppe-service/net/ipv4_cidr.h"

namespace ppe::config {

using ppe::config::v1::PpeConfig;

absl::Status ValidateHosts(PpeConfig& c, const std::string& origin) {
  auto* hv = c.mutable_hypervisor();
  if (hv->host_grace_s() == 0) hv->set_host_grace_s(30);
  if (hv->host_check_ms() == 0) hv->set_host_check_ms(2000);
  if (hv->host_check_ms() < 100) {
    return FieldError(origin, "hypervisor.host_check_ms", "at least 100");
  }
  if (c.hosts_size() == 0) {
    if (c.region_distances_size() > 0) {
      return FieldError(origin, "region_distances",
                        "needs `hosts` (with one host it means nothing)");
    }
    return absl::OkStatus();
  }

  std::set<std::string> services;
  for (const auto& zone : c.zones()) {
    for (const auto& svc : zone.services()) {
      services.insert(svc.name());
      if (!svc.address_pool().empty() || !svc.bridge().empty() || !svc.network().empty()) {
        spdlog::warn(
            "{}: service {}: address_pool, network and bridge are per host when `hosts` is "
            "set; the service's own are ignored",
            origin, svc.name());
      }
    }
  }
  std::set<std::string> names, regions, placeable;
  // Every pool of every host, to find overlaps: (first, last) -> its field.
  std::map<std::pair<uint32_t, uint32_t>, std::string> ranges;
  for (int h = 0; h < c.hosts_size(); ++h) {
    auto* host = c.mutable_hosts(h);
    std::string field = absl::StrCat("hosts[", h, "]");
    if (host->name().empty()) return FieldError(origin, field + ".name", "is required");
    if (!names.insert(host->name()).second) {
      return FieldError(origin, field + ".name", absl::StrCat("duplicate '", host->name(), "'"));
    }
    field = absl::StrCat(field, " (", host->name(), ")");
    if (host->uri().empty()) return FieldError(origin, field + ".uri", "is required");
    host->set_region(absl::AsciiStrToLower(host->region()));
    if (host->region().empty()) return FieldError(origin, field + ".region", "is required");
    regions.insert(host->region());
    if (!host->bridge().empty() && !host->network().empty()) {
      return FieldError(origin, field + ".bridge", "set bridge or network, not both");
    }
    if (host->address_pools_size() == 0) {
      return FieldError(origin, field + ".address_pools", "at least one is required");
    }
    std::set<std::string> pooled;
    for (int p = 0; p < host->address_pools_size(); ++p) {
      const auto& pool = host->address_pools(p);
      std::string pfield = absl::StrCat(field, ".address_pools[", p, "]");
      if (!services.contains(pool.service())) {
        return FieldError(origin, pfield + ".service",
                          absl::StrCat("'", LogSafe(pool.service()), "' is not a service name"));
      }
      if (!pooled.insert(pool.service()).second) {
        return FieldError(origin, pfield + ".service",
                          absl::StrCat("a second pool for '", pool.service(), "' on this host"));
      }
      absl::StatusOr<net::Ipv4HostRange> range = net::ParseIpv4Pool(pool.cidr());
      if (!range.ok()) {
        return FieldError(origin, pfield + ".cidr", std::string(range.status().message()));
      }
      for (const auto& [other, where] : ranges) {
        if (range->first <= other.second && other.first <= range->last) {
          return FieldError(origin, pfield + ".cidr",
                            absl::StrCat("'", pool.cidr(), "' overlaps ", where,
                                         ": a VM's host is the one whose pool holds its address"));
        }
      }
      ranges[{range->first, range->last}] = pfield;
      if (host->prefix_length() == 0) {
        host->set_prefix_length(static_cast<uint32_t>(range->prefix_length));
      }
      placeable.insert(pool.service());
    }
    if (host->prefix_length() > 32) {
      return FieldError(origin, field + ".prefix_length", "must be at most 32");
    }
  }
  for (const std::string& service : services) {
    if (!placeable.contains(service)) {
      return FieldError(origin, "hosts",
                        absl::StrCat("service '", service,
                                     "' has no address pool on any host: it could never get a VM"));
    }
  }
  std::set<std::pair<std::string, std::string>> pairs;
  for (int d = 0; d < c.region_distances_size(); ++d) {
    auto* rd = c.mutable_region_distances(d);
    std::string field = absl::StrCat("region_distances[", d, "]");
    rd->set_from(absl::AsciiStrToLower(rd->from()));
    rd->set_to(absl::AsciiStrToLower(rd->to()));
    if (rd->from().empty() || rd->to().empty()) {
      return FieldError(origin, field, "`from` and `to` are required");
    }
    if (rd->from() == rd->to()) {
      return FieldError(origin, field, "a region is at distance 0 from itself");
    }
    std::pair<std::string, std::string> key =
        rd->from() < rd->to() ? std::pair(rd->from(), rd->to()) : std::pair(rd->to(), rd->from());
    if (rd->from() == "*" || rd->to() == "*") key = {"*", "*"};
    if (!pairs.insert(key).second) {
      return FieldError(origin, field,
                        absl::StrCat("a second distance between '", rd->from(), "' and '", rd->to(),
                                     "' (distances are symmetric)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace ppe::config
