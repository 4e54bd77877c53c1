#include "ppe-service/config/validators.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/config/text_proto.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/net/ipv4_cidr.h"

namespace ppe::config {

using ppe::config::v1::PpeConfig;

absl::Status CheckTopLevel(const PpeConfig& c, const std::string& origin) {
  if (c.worker_threads() > 256) return FieldError(origin, "worker_threads", "at most 256");
  return absl::OkStatus();
}

absl::Status CheckCpt(const v1::CptSettings& cpt, const std::string& origin) {
  if (cpt.length() < cpt::CptCodec::kMinLength || cpt.length() > cpt::CptCodec::kMaxLength) {
    return FieldError(origin, "cpt.length", "must be 16..32");
  }
  if (cpt.time_buckets_per_day() == 0 || cpt.time_buckets_per_day() > 1440 ||
      1440 % cpt.time_buckets_per_day() != 0) {
    return FieldError(origin, "cpt.time_buckets_per_day", "must divide 1440 (minutes per day)");
  }
  return absl::OkStatus();
}

absl::Status CheckRegistry(const v1::Registry& r, const std::string& origin) {
  if (r.store() != v1::Registry::SQLITE && r.store() != v1::Registry::MEMORY &&
      r.store() != v1::Registry::ETCD) {
    return FieldError(origin, "registry.store", "must be SQLITE, MEMORY or ETCD");
  }
  if (r.store() == v1::Registry::ETCD && r.etcd_endpoints().empty()) {
    return FieldError(origin, "registry.etcd_endpoints", "needed for store ETCD");
  }
  return absl::OkStatus();
}

absl::Status CheckScaler(const v1::Scaler& s, const std::string& origin) {
  if (s.mode() != v1::Scaler::PREDICTIVE && s.mode() != v1::Scaler::REACTIVE &&
      s.mode() != v1::Scaler::OFF) {
    return FieldError(origin, "scaler.mode", "must be PREDICTIVE, REACTIVE or OFF");
  }
  if (s.bucket_ms() < 100) return FieldError(origin, "scaler.bucket_ms", "at least 100");
  if (s.level() <= 0 || s.level() >= 100) {
    return FieldError(origin, "scaler.level", "must be between 0 and 100");
  }
  return absl::OkStatus();
}

absl::Status CheckUsage(const v1::Usage& u, const std::string& origin) {
  if (u.mode() != v1::Usage::ACT && u.mode() != v1::Usage::OBSERVE && u.mode() != v1::Usage::OFF) {
    return FieldError(origin, "usage.mode", "must be ACT, OBSERVE or OFF");
  }
  if (u.busy_cpu_percent() < 0 || u.busy_cpu_percent() > 100) {
    return FieldError(origin, "usage.busy_cpu_percent", "must be between 0 and 100");
  }
  if (u.idle_cpu_percent() < 0 || u.idle_cpu_percent() >= u.busy_cpu_percent()) {
    return FieldError(
        origin, "usage.idle_cpu_percent",
        absl::StrCat("must be between 0 and busy_cpu_percent (", u.busy_cpu_percent(), ")"));
  }
  if (u.idle_network_bytes_per_s() < 0) {
    return FieldError(origin, "usage.idle_network_bytes_per_s", "must not be negative");
  }
  if (u.idle_period_s() < 2 * u.poll_interval_s()) {
    return FieldError(origin, "usage.idle_period_s",
                      absl::StrCat("at least two poll intervals (", 2 * u.poll_interval_s(),
                                   " s): idleness needs two samples"));
  }
  if (u.busy_period_s() < 2 * u.poll_interval_s()) {
    return FieldError(origin, "usage.busy_period_s",
                      absl::StrCat("at least two poll intervals (", 2 * u.poll_interval_s(),
                                   " s): busyness needs two samples"));
  }
  return absl::OkStatus();
}

absl::Status CheckWorkloadClasses(const PpeConfig& c, const std::string& origin) {
  std::set<std::string> classes;
  for (int i = 0; i < c.workload_classes_size(); ++i) {
    const v1::WorkloadClass& w = c.workload_classes(i);
    std::string field = absl::StrCat("workload_classes[", i, "]");
    if (w.name().empty()) return FieldError(origin, field + ".name", "is required");
    if (!classes.insert(w.name()).second) {
      return FieldError(origin, field + ".name", absl::StrCat("duplicate '", w.name(), "'"));
    }
    if (w.max_vcpus() < w.vcpus()) return FieldError(origin, field + ".max_vcpus", "< vcpus");
    if (w.max_memory_mib() < w.memory_mib()) {
      return FieldError(origin, field + ".max_memory_mib", "< memory_mib");
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckNameserverAddresses(const v1::Zone& zone, const std::string& field,
                                      const std::string& origin) {
  std::set<std::string> with_addresses;
  for (int n = 0; n < zone.nameserver_addresses_size(); ++n) {
    const v1::NameserverAddresses& glue = zone.nameserver_addresses(n);
    std::string gfield = absl::StrCat(field, ".nameserver_addresses[", n, "]");
    if (std::find(zone.nameservers().begin(), zone.nameservers().end(), glue.name()) ==
        zone.nameservers().end()) {
      return FieldError(origin, gfield + ".name",
                        absl::StrCat("'", LogSafe(glue.name()), "' is not one of nameservers"));
    }
    if (!absl::EndsWith(glue.name(), "." + zone.name())) {
      return FieldError(origin, gfield + ".name",
                        "is outside the zone: its addresses belong to its own zone");
    }
    if (!with_addresses.insert(glue.name()).second) {
      return FieldError(origin, gfield + ".name", "duplicate");
    }
    if (glue.addresses_size() == 0) {
      return FieldError(origin, gfield + ".addresses", "at least one is required");
    }
    for (int a = 0; a < glue.addresses_size(); ++a) {
      if (!net::IsIpAddress(glue.addresses(a))) {
        return FieldError(origin, absl::StrCat(gfield, ".addresses[", a, "]"),
                          absl::StrCat("'", LogSafe(glue.addresses(a)), "' is not an IP address"));
      }
    }
  }
  for (const std::string& ns : zone.nameservers()) {
    if (absl::EndsWith(ns, "." + zone.name()) && !with_addresses.contains(ns)) {
      spdlog::warn(
          "{}: {}.nameservers: {} is inside the zone but has no nameserver_addresses: "
          "resolvers cannot reach it by name",
          origin, field, ns);
    }
  }
  return absl::OkStatus();
}

// With `hosts`, a service's pool may be left out (pools are per host, CheckHosts).
absl::Status CheckService(const v1::Service& svc, const std::set<std::string>& classes,
                          bool with_hosts, const std::string& sfield, const std::string& origin) {
  if (svc.name().empty() || svc.name().find('.') != std::string::npos) {
    return FieldError(origin, sfield + ".name", "must be one DNS label");
  }
  if (!classes.contains(svc.workload_class())) {
    return FieldError(origin, sfield + ".workload_class",
                      absl::StrCat("'", svc.workload_class(), "' is not a workload_classes name"));
  }
  if (!with_hosts || !svc.address_pool().empty()) {
    absl::StatusOr<net::Ipv4HostRange> pool = net::ParseIpv4Pool(svc.address_pool());
    if (!pool.ok()) {
      return FieldError(origin, sfield + ".address_pool", std::string(pool.status().message()));
    }
  }
  if (svc.prefix_length() > 32) {
    return FieldError(origin, sfield + ".prefix_length", "must be at most 32");
  }
  for (int f = 0; f < svc.fallback_addresses_size(); ++f) {
    const std::string& a = svc.fallback_addresses(f);
    if (!net::IsIpAddress(a)) {
      return FieldError(origin, absl::StrCat(sfield, ".fallback_addresses[", f, "]"),
                        absl::StrCat("'", a, "' is not an IP address"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckZones(const PpeConfig& c, const std::string& origin) {
  std::set<std::string> classes;
  for (const v1::WorkloadClass& w : c.workload_classes()) classes.insert(w.name());
  if (c.zones_size() == 0) return FieldError(origin, "zones", "at least one zone is required");
  std::set<std::string> zone_names;
  for (int z = 0; z < c.zones_size(); ++z) {
    const v1::Zone& zone = c.zones(z);
    std::string field = absl::StrCat("zones[", z, "]");
    if (zone.name().empty()) return FieldError(origin, field + ".name", "is required");
    if (!zone_names.insert(zone.name()).second) {
      return FieldError(origin, field + ".name", "duplicate zone");
    }
    if (zone.nameservers_size() == 0) {
      return FieldError(origin, field + ".nameservers", "at least one is required");
    }
    PPE_RETURN_IF_ERROR(CheckNameserverAddresses(zone, field, origin));
    if (zone.services_size() == 0) {
      return FieldError(origin, field + ".services", "at least one service is required");
    }
    std::set<std::string> services;
    for (int s = 0; s < zone.services_size(); ++s) {
      std::string sfield = absl::StrCat(field, ".services[", s, "]");
      PPE_RETURN_IF_ERROR(
          CheckService(zone.services(s), classes, c.hosts_size() > 0, sfield, origin));
      if (!services.insert(zone.services(s).name()).second) {
        return FieldError(origin, sfield + ".name", "duplicate service");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRegions(const PpeConfig& c, const std::string& origin) {
  for (int r = 0; r < c.regions_size(); ++r) {
    if (absl::StatusOr<cpt::Prefix> p = cpt::Prefix::Parse(c.regions(r).cidr()); !p.ok()) {
      return FieldError(origin, absl::StrCat("regions[", r, "].cidr"),
                        std::string(p.status().message()));
    }
    if (c.regions(r).region().empty()) {
      return FieldError(origin, absl::StrCat("regions[", r, "].region"), "is required");
    }
  }
  return absl::OkStatus();
}

namespace {

// One host: name, uri, region, bridge or network, and its pools (a known
// service once each, parsable, overlapping no pool seen before: `ranges`).
absl::Status CheckHost(const v1::Host& host, const std::string& host_field,
                       const std::set<std::string>& services,
                       std::map<std::pair<uint32_t, uint32_t>, std::string>& ranges,
                       std::set<std::string>& placeable, const std::string& origin) {
  const std::string field = absl::StrCat(host_field, " (", host.name(), ")");
  if (host.uri().empty()) return FieldError(origin, field + ".uri", "is required");
  if (host.region().empty()) return FieldError(origin, field + ".region", "is required");
  if (!host.bridge().empty() && !host.network().empty()) {
    return FieldError(origin, field + ".bridge", "set bridge or network, not both");
  }
  if (host.address_pools_size() == 0) {
    return FieldError(origin, field + ".address_pools", "at least one is required");
  }
  std::set<std::string> pooled;
  for (int p = 0; p < host.address_pools_size(); ++p) {
    const auto& pool = host.address_pools(p);
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
    placeable.insert(pool.service());
  }
  if (host.prefix_length() > 32) {
    return FieldError(origin, field + ".prefix_length", "must be at most 32");
  }
  return absl::OkStatus();
}

absl::Status CheckRegionDistances(const PpeConfig& c, const std::string& origin) {
  std::set<std::pair<std::string, std::string>> pairs;
  for (int d = 0; d < c.region_distances_size(); ++d) {
    const v1::RegionDistance& rd = c.region_distances(d);
    std::string field = absl::StrCat("region_distances[", d, "]");
    if (rd.from().empty() || rd.to().empty()) {
      return FieldError(origin, field, "`from` and `to` are required");
    }
    if (rd.from() == rd.to()) {
      return FieldError(origin, field, "a region is at distance 0 from itself");
    }
    std::pair<std::string, std::string> key =
        rd.from() < rd.to() ? std::pair(rd.from(), rd.to()) : std::pair(rd.to(), rd.from());
    if (rd.from() == "*" || rd.to() == "*") key = {"*", "*"};
    if (!pairs.insert(key).second) {
      return FieldError(origin, field,
                        absl::StrCat("a second distance between '", rd.from(), "' and '", rd.to(),
                                     "' (distances are symmetric)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckHosts(const PpeConfig& c, const std::string& origin) {
  if (c.hypervisor().host_check_ms() < 100) {
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
  std::set<std::string> names, placeable;
  // Every pool of every host, to find overlaps: (first, last) -> its field.
  std::map<std::pair<uint32_t, uint32_t>, std::string> ranges;
  for (int h = 0; h < c.hosts_size(); ++h) {
    const v1::Host& host = c.hosts(h);
    std::string field = absl::StrCat("hosts[", h, "]");
    if (host.name().empty()) return FieldError(origin, field + ".name", "is required");
    if (!names.insert(host.name()).second) {
      return FieldError(origin, field + ".name", absl::StrCat("duplicate '", host.name(), "'"));
    }
    PPE_RETURN_IF_ERROR(CheckHost(host, field, services, ranges, placeable, origin));
  }
  for (const std::string& service : services) {
    if (!placeable.contains(service)) {
      return FieldError(origin, "hosts",
                        absl::StrCat("service '", service,
                                     "' has no address pool on any host: it could never get a VM"));
    }
  }
  return CheckRegionDistances(c, origin);
}

absl::Status CheckAdminAuth(const PpeConfig& config, const std::string& origin) {
  const v1::AdminAuth& a = config.admin_auth();
  const std::string mode = a.mode().empty() ? "none" : a.mode();
  if (mode != "none" && mode != "token" && mode != "mtls") {
    return FieldError(
        origin, "admin_auth.mode",
        absl::StrCat("unknown mode '", LogSafe(a.mode()), "' (expected none, token or mtls)"));
  }
  const bool token = mode == "token";
  const bool mtls = mode == "mtls";
  if ((token || mtls) && config.admin_listen().empty()) {
    return FieldError(origin, "admin_listen",
                      absl::StrCat("is required with admin_auth.mode '", mode,
                                   "' (the Resolver port `listen` stays unauthenticated)"));
  }
  if (!config.admin_listen().empty() && config.admin_listen() == config.listen()) {
    return FieldError(origin, "admin_listen", "must differ from listen");
  }
  if (token && a.token_file().empty()) {
    return FieldError(origin, "admin_auth.token_file", "is required with mode 'token'");
  }
  if (!token && !a.token_file().empty()) {
    return FieldError(origin, "admin_auth.token_file",
                      absl::StrCat("is only used with mode 'token', not '", mode, "'"));
  }
  if (a.tls_cert_file().empty() != a.tls_key_file().empty()) {
    return FieldError(
        origin, a.tls_cert_file().empty() ? "admin_auth.tls_cert_file" : "admin_auth.tls_key_file",
        "tls_cert_file and tls_key_file go together");
  }
  if (mtls && a.tls_cert_file().empty()) {
    return FieldError(origin, "admin_auth.tls_cert_file",
                      "mode 'mtls' needs tls_cert_file, tls_key_file and client_ca_file");
  }
  if (mtls && a.client_ca_file().empty()) {
    return FieldError(origin, "admin_auth.client_ca_file",
                      "mode 'mtls' needs the CA that signs client certificates");
  }
  if (!token && !mtls && !a.tls_cert_file().empty()) {
    return FieldError(origin, "admin_auth.tls_cert_file",
                      "TLS on the admin port is used with mode 'token' or 'mtls', not 'none'");
  }
  if (!mtls && !a.client_ca_file().empty()) {
    return FieldError(origin, "admin_auth.client_ca_file", "is only used with mode 'mtls'");
  }
  if (!mtls && a.allowed_client_names_size() > 0) {
    return FieldError(origin, "admin_auth.allowed_client_names", "is only used with mode 'mtls'");
  }
  for (int i = 0; i < a.allowed_client_names_size(); ++i) {
    if (a.allowed_client_names(i).empty()) {
      return FieldError(origin, absl::StrCat("admin_auth.allowed_client_names[", i, "]"),
                        "is empty");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPpeConfig(const PpeConfig& c, const std::string& origin) {
  PPE_RETURN_IF_ERROR(CheckTopLevel(c, origin));
  PPE_RETURN_IF_ERROR(CheckCpt(c.cpt(), origin));
  PPE_RETURN_IF_ERROR(CheckRegistry(c.registry(), origin));
  PPE_RETURN_IF_ERROR(CheckScaler(c.scaler(), origin));
  PPE_RETURN_IF_ERROR(CheckUsage(c.usage(), origin));
  PPE_RETURN_IF_ERROR(CheckWorkloadClasses(c, origin));
  PPE_RETURN_IF_ERROR(CheckZones(c, origin));
  PPE_RETURN_IF_ERROR(CheckRegions(c, origin));
  PPE_RETURN_IF_ERROR(CheckHosts(c, origin));
  return CheckAdminAuth(c, origin);
}

}  // namespace ppe::config
