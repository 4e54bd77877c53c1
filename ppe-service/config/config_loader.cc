#include "ppe-service/config/config_loader.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/config/hosts_config.h"
#include "ppe-service/config/text_proto.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/dns/name_parser.h"
#include "ppe-service/net/ipv4_cidr.h"

namespace ppe::config {
namespace {

using ppe::config::v1::PpeConfig;

absl::Status Validate(PpeConfig& c, const std::string& origin) {
  if (c.listen().empty()) c.set_listen("127.0.0.1:50051");
  if (c.state_dir().empty()) c.set_state_dir("/var/lib/ppe");
  if (c.worker_threads() == 0) c.set_worker_threads(4);
  if (c.worker_threads() > 256) return FieldError(origin, "worker_threads", "at most 256");
  if (c.hypervisor().uri().empty()) c.mutable_hypervisor()->set_uri("test:///default");
  if (c.hypervisor().boot_timeout_ms() == 0) c.mutable_hypervisor()->set_boot_timeout_ms(30000);

  auto* cpt = c.mutable_cpt();
  if (cpt->length() == 0) cpt->set_length(cpt::CptCodec::kDefaultLength);
  if (cpt->length() < cpt::CptCodec::kMinLength || cpt->length() > cpt::CptCodec::kMaxLength) {
    return FieldError(origin, "cpt.length", "must be 16..32");
  }
  if (cpt->time_buckets_per_day() == 0) cpt->set_time_buckets_per_day(4);
  if (cpt->time_buckets_per_day() > 1440 || 1440 % cpt->time_buckets_per_day() != 0) {
    return FieldError(origin, "cpt.time_buckets_per_day", "must divide 1440 (minutes per day)");
  }
  if (cpt->key_file().empty()) cpt->set_key_file(c.state_dir() + "/cpt-keys");

  auto* reg = c.mutable_registry();
  if (reg->store().empty()) reg->set_store("sqlite");
  if (reg->store() != "sqlite" && reg->store() != "memory" && reg->store() != "etcd") {
    return FieldError(origin, "registry.store", "must be \"sqlite\", \"memory\" or \"etcd\"");
  }
  if (reg->store() == "etcd" && reg->etcd_endpoints().empty()) {
    return FieldError(origin, "registry.etcd_endpoints", "needed for store \"etcd\"");
  }
  if (reg->etcd_timeout_ms() == 0) reg->set_etcd_timeout_ms(5000);
  if (reg->sqlite_path().empty()) reg->set_sqlite_path(c.state_dir() + "/registry.db");
  if (reg->idle_profile_expiry_s() == 0) reg->set_idle_profile_expiry_s(86400);
  if (reg->janitor_interval_s() == 0) reg->set_janitor_interval_s(10);

  auto* lim = c.mutable_limits();
  if (lim->registrations_per_minute() == 0) lim->set_registrations_per_minute(60);
  if (lim->registrations_burst() == 0) lim->set_registrations_burst(20);
  if (lim->max_vms_per_profile() == 0) lim->set_max_vms_per_profile(4);
  if (lim->max_vms_total() == 0) lim->set_max_vms_total(1000);

  auto* sc = c.mutable_scaler();
  if (sc->mode().empty()) sc->set_mode("predictive");
  if (sc->mode() != "predictive" && sc->mode() != "reactive" && sc->mode() != "off") {
    return FieldError(origin, "scaler.mode", "must be \"predictive\", \"reactive\" or \"off\"");
  }
  if (sc->bucket_ms() == 0) sc->set_bucket_ms(60000);
  if (sc->bucket_ms() < 100) return FieldError(origin, "scaler.bucket_ms", "at least 100");
  if (sc->lead_buffer_ms() == 0) sc->set_lead_buffer_ms(30000);
  if (sc->level() == 0) sc->set_level(95);
  if (sc->level() <= 0 || sc->level() >= 100) {
    return FieldError(origin, "scaler.level", "must be between 0 and 100");
  }
  if (sc->refit_every_buckets() == 0) sc->set_refit_every_buckets(60);
  if (sc->cooldown_buckets() == 0) sc->set_cooldown_buckets(15);
  if (sc->history_buckets() == 0) sc->set_history_buckets(10080);
  if (sc->keep_warm_buckets() == 0) sc->set_keep_warm_buckets(10);
  if (sc->checkpoint_every_buckets() == 0) sc->set_checkpoint_every_buckets(10);
  if (sc->seasonal_periods_size() == 0 && 86400000 / sc->bucket_ms() >= 2) {
    sc->add_seasonal_periods(86400000 / sc->bucket_ms());
  }

  auto* use = c.mutable_usage();
  if (use->mode().empty()) use->set_mode("act");
  if (use->mode() != "act" && use->mode() != "observe" && use->mode() != "off") {
    return FieldError(origin, "usage.mode", "must be \"act\", \"observe\" or \"off\"");
  }
  if (use->poll_interval_s() == 0) use->set_poll_interval_s(10);
  if (use->idle_cpu_percent() == 0) use->set_idle_cpu_percent(2);
  if (use->busy_cpu_percent() == 0) use->set_busy_cpu_percent(80);
  if (use->idle_period_s() == 0) use->set_idle_period_s(600);
  if (use->busy_period_s() == 0) use->set_busy_period_s(60);
  if (use->idle_network_bytes_per_s() == 0) use->set_idle_network_bytes_per_s(50);
  if (use->busy_cpu_percent() < 0 || use->busy_cpu_percent() > 100) {
    return FieldError(origin, "usage.busy_cpu_percent", "must be between 0 and 100");
  }
  if (use->idle_cpu_percent() < 0 || use->idle_cpu_percent() >= use->busy_cpu_percent()) {
    return FieldError(
        origin, "usage.idle_cpu_percent",
        absl::StrCat("must be between 0 and busy_cpu_percent (", use->busy_cpu_percent(), ")"));
  }
  if (use->idle_network_bytes_per_s() < 0) {
    return FieldError(origin, "usage.idle_network_bytes_per_s", "must not be negative");
  }
  if (use->idle_period_s() < 2 * use->poll_interval_s()) {
    return FieldError(origin, "usage.idle_period_s",
                      absl::StrCat("at least two poll intervals (", 2 * use->poll_interval_s(),
                                   " s): idleness needs two samples"));
  }
  if (use->busy_period_s() < 2 * use->poll_interval_s()) {
    return FieldError(origin, "usage.busy_period_s",
                      absl::StrCat("at least two poll intervals (", 2 * use->poll_interval_s(),
                                   " s): busyness needs two samples"));
  }

  auto* ans = c.mutable_answers();
  if (ans->ttl() == 0) ans->set_ttl(30);
  if (ans->fallback_ttl() == 0) ans->set_fallback_ttl(5);
  if (ans->allocation_wait_ms() == 0) ans->set_allocation_wait_ms(150);
  if (reg->drain_s() == 0) reg->set_drain_s(std::max<uint32_t>(60, 2 * ans->ttl()));

  std::set<std::string> classes;
  for (int i = 0; i < c.workload_classes_size(); ++i) {
    auto* w = c.mutable_workload_classes(i);
    std::string field = absl::StrCat("workload_classes[", i, "]");
    if (w->name().empty()) return FieldError(origin, field + ".name", "is required");
    if (!classes.insert(w->name()).second) {
      return FieldError(origin, field + ".name", absl::StrCat("duplicate '", w->name(), "'"));
    }
    if (w->vcpus() == 0) w->set_vcpus(1);
    if (w->memory_mib() == 0) w->set_memory_mib(256);
    if (w->max_vcpus() == 0) w->set_max_vcpus(w->vcpus());
    if (w->max_memory_mib() == 0) w->set_max_memory_mib(w->memory_mib());
    if (w->max_vcpus() < w->vcpus()) return FieldError(origin, field + ".max_vcpus", "< vcpus");
    if (w->max_memory_mib() < w->memory_mib()) {
      return FieldError(origin, field + ".max_memory_mib", "< memory_mib");
    }
  }

  if (c.zones_size() == 0) return FieldError(origin, "zones", "at least one zone is required");
  std::set<std::string> zone_names;
  for (int z = 0; z < c.zones_size(); ++z) {
    auto* zone = c.mutable_zones(z);
    std::string field = absl::StrCat("zones[", z, "]");
    if (zone->name().empty()) return FieldError(origin, field + ".name", "is required");
    zone->set_name(dns::CanonicalName(zone->name()));
    if (!zone_names.insert(zone->name()).second) {
      return FieldError(origin, field + ".name", "duplicate zone");
    }
    if (zone->id() == 0) zone->set_id(z + 1);
    if (zone->apex_ttl() == 0) zone->set_apex_ttl(3600);
    if (zone->nameservers_size() == 0) {
      return FieldError(origin, field + ".nameservers", "at least one is required");
    }
    for (auto& ns : *zone->mutable_nameservers()) ns = dns::CanonicalName(ns);
    std::set<std::string> with_addresses;
    for (int n = 0; n < zone->nameserver_addresses_size(); ++n) {
      auto* glue = zone->mutable_nameserver_addresses(n);
      std::string gfield = absl::StrCat(field, ".nameserver_addresses[", n, "]");
      glue->set_name(dns::CanonicalName(glue->name()));
      if (std::find(zone->nameservers().begin(), zone->nameservers().end(), glue->name()) ==
          zone->nameservers().end()) {
        return FieldError(origin, gfield + ".name",
                          absl::StrCat("'", LogSafe(glue->name()), "' is not one of nameservers"));
      }
      if (!absl::EndsWith(glue->name(), "." + zone->name())) {
        return FieldError(origin, gfield + ".name",
                          "is outside the zone: its addresses belong to its own zone");
      }
      if (!with_addresses.insert(glue->name()).second) {
        return FieldError(origin, gfield + ".name", "duplicate");
      }
      if (glue->addresses_size() == 0) {
        return FieldError(origin, gfield + ".addresses", "at least one is required");
      }
      for (int a = 0; a < glue->addresses_size(); ++a) {
        if (!net::IsIpAddress(glue->addresses(a))) {
          return FieldError(
              origin, absl::StrCat(gfield, ".addresses[", a, "]"),
              absl::StrCat("'", LogSafe(glue->addresses(a)), "' is not an IP address"));
        }
      }
    }
    for (const std::string& ns : zone->nameservers()) {
      if (absl::EndsWith(ns, "." + zone->name()) && !with_addresses.contains(ns)) {
        spdlog::warn(
            "{}: {}.nameservers: {} is inside the zone but has no nameserver_addresses: "
            "resolvers cannot reach it by name",
            origin, field, ns);
      }
    }
    auto* soa = zone->mutable_soa();
    if (soa->mname().empty()) soa->set_mname(zone->nameservers(0));
    if (soa->rname().empty()) soa->set_rname("hostmaster." + zone->name());
    soa->set_mname(dns::CanonicalName(soa->mname()));
    soa->set_rname(dns::CanonicalName(soa->rname()));
    if (soa->serial() == 0) soa->set_serial(1);
    if (soa->refresh() == 0) soa->set_refresh(3600);
    if (soa->retry() == 0) soa->set_retry(600);
    if (soa->expire() == 0) soa->set_expire(604800);
    if (soa->minimum() == 0) soa->set_minimum(60);
    if (zone->services_size() == 0) {
      return FieldError(origin, field + ".services", "at least one service is required");
    }
    std::set<std::string> services;
    for (int s = 0; s < zone->services_size(); ++s) {
      auto* svc = zone->mutable_services(s);
      std::string sfield = absl::StrCat(field, ".services[", s, "]");
      if (svc->name().empty() || svc->name().find('.') != std::string::npos) {
        return FieldError(origin, sfield + ".name", "must be one DNS label");
      }
      svc->set_name(absl::AsciiStrToLower(svc->name()));
      if (!services.insert(svc->name()).second) {
        return FieldError(origin, sfield + ".name", "duplicate service");
      }
      if (!classes.contains(svc->workload_class())) {
        return FieldError(
            origin, sfield + ".workload_class",
            absl::StrCat("'", svc->workload_class(), "' is not a workload_classes name"));
      }
      if (svc->requests_per_vm() == 0) svc->set_requests_per_vm(600);
      // With `hosts`, pools are per host (ValidateHosts).
      if (c.hosts_size() == 0 || !svc->address_pool().empty()) {
        absl::StatusOr<net::Ipv4HostRange> pool = net::ParseIpv4Pool(svc->address_pool());
        if (!pool.ok()) {
          return FieldError(origin, sfield + ".address_pool", std::string(pool.status().message()));
        }
        if (svc->prefix_length() == 0) {
          svc->set_prefix_length(static_cast<uint32_t>(pool->prefix_length));
        }
      }
      if (svc->prefix_length() > 32) {
        return FieldError(origin, sfield + ".prefix_length", "must be at most 32");
      }
      for (int f = 0; f < svc->fallback_addresses_size(); ++f) {
        const std::string& a = svc->fallback_addresses(f);
        if (!net::IsIpAddress(a)) {
          return FieldError(origin, absl::StrCat(sfield, ".fallback_addresses[", f, "]"),
                            absl::StrCat("'", a, "' is not an IP address"));
        }
      }
    }
  }
  for (int r = 0; r < c.regions_size(); ++r) {
    if (absl::StatusOr<cpt::Prefix> p = cpt::Prefix::Parse(c.regions(r).cidr()); !p.ok()) {
      return FieldError(origin, absl::StrCat("regions[", r, "].cidr"),
                        std::string(p.status().message()));
    }
    if (c.regions(r).region().empty()) {
      return FieldError(origin, absl::StrCat("regions[", r, "].region"), "is required");
    }
  }
  return ValidateHosts(c, origin);
}

}  // namespace

absl::StatusOr<PpeConfig> ParsePpeConfig(const std::string& text, const std::string& origin) {
  absl::StatusOr<PpeConfig> c = ParseTextProto<PpeConfig>(text, origin);
  if (!c.ok()) return c;
  if (absl::Status s = Validate(*c, origin); !s.ok()) return s;
  return c;
}

absl::StatusOr<PpeConfig> LoadPpeConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  return ParsePpeConfig(*text, path);
}

}  // namespace ppe::config
