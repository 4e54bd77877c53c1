#include "ppe-service/config/defaults.h"

#include <algorithm>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/dns/name_parser.h"
#include "ppe-service/net/ipv4_cidr.h"

namespace ppe::config {
namespace {

using ppe::config::v1::PpeConfig;

void FillTopLevel(PpeConfig& c) {
  if (c.listen().empty()) c.set_listen("127.0.0.1:50051");
  if (c.state_dir().empty()) c.set_state_dir("/var/lib/ppe");
  if (c.worker_threads() == 0) c.set_worker_threads(4);
}

void FillHypervisor(v1::Hypervisor& h) {
  if (h.uri().empty()) h.set_uri("test:///default");
  if (h.boot_timeout_ms() == 0) h.set_boot_timeout_ms(30000);
  if (h.host_grace_s() == 0) h.set_host_grace_s(30);
  if (h.host_check_ms() == 0) h.set_host_check_ms(2000);
}

// Regions are compared lower-case; a host's prefix_length defaults to its
// first pool's.
void FillHost(v1::Host& host) {
  host.set_region(absl::AsciiStrToLower(host.region()));
  if (host.prefix_length() == 0 && host.address_pools_size() > 0) {
    if (absl::StatusOr<net::Ipv4HostRange> pool = net::ParseIpv4Pool(host.address_pools(0).cidr());
        pool.ok()) {
      host.set_prefix_length(static_cast<uint32_t>(pool->prefix_length));
    }
  }
}

void FillRegionDistance(v1::RegionDistance& d) {
  d.set_from(absl::AsciiStrToLower(d.from()));
  d.set_to(absl::AsciiStrToLower(d.to()));
}

void FillCpt(v1::CptSettings& cpt, const std::string& state_dir) {
  if (cpt.length() == 0) cpt.set_length(cpt::CptCodec::kDefaultLength);
  if (cpt.time_buckets_per_day() == 0) cpt.set_time_buckets_per_day(4);
  if (cpt.key_file().empty()) cpt.set_key_file(state_dir + "/cpt-keys");
}

void FillAnswers(v1::AnswerSettings& a) {
  if (a.ttl() == 0) a.set_ttl(30);
  if (a.fallback_ttl() == 0) a.set_fallback_ttl(5);
  if (a.allocation_wait_ms() == 0) a.set_allocation_wait_ms(150);
}

void FillRegistry(v1::Registry& r, const std::string& state_dir, uint32_t answer_ttl) {
  if (r.store() == v1::Registry::STORE_UNSPECIFIED) r.set_store(v1::Registry::SQLITE);
  if (r.etcd_timeout_ms() == 0) r.set_etcd_timeout_ms(5000);
  if (r.sqlite_path().empty()) r.set_sqlite_path(state_dir + "/registry.db");
  if (r.idle_profile_expiry_s() == 0) r.set_idle_profile_expiry_s(86400);
  if (r.janitor_interval_s() == 0) r.set_janitor_interval_s(10);
  if (r.drain_s() == 0) r.set_drain_s(std::max<uint32_t>(60, 2 * answer_ttl));
  if (r.etcd_lease_ttl_s() == 0) r.set_etcd_lease_ttl_s(2);
}

void FillLimits(v1::Limits& l) {
  if (l.registrations_per_minute() == 0) l.set_registrations_per_minute(60);
  if (l.registrations_burst() == 0) l.set_registrations_burst(20);
  if (l.max_vms_per_profile() == 0) l.set_max_vms_per_profile(4);
  if (l.max_vms_total() == 0) l.set_max_vms_total(1000);
}

void FillScaler(v1::Scaler& s) {
  if (s.mode() == v1::Scaler::MODE_UNSPECIFIED) s.set_mode(v1::Scaler::PREDICTIVE);
  if (s.bucket_ms() == 0) s.set_bucket_ms(60000);
  if (s.lead_buffer_ms() == 0) s.set_lead_buffer_ms(30000);
  if (s.level() == 0) s.set_level(95);
  if (s.refit_every_buckets() == 0) s.set_refit_every_buckets(60);
  if (s.cooldown_buckets() == 0) s.set_cooldown_buckets(15);
  if (s.history_buckets() == 0) s.set_history_buckets(10080);
  if (s.keep_warm_buckets() == 0) s.set_keep_warm_buckets(10);
  if (s.checkpoint_every_buckets() == 0) s.set_checkpoint_every_buckets(1);
  if (s.seasonal_periods_size() == 0 && 86400000 / s.bucket_ms() >= 2) {
    s.add_seasonal_periods(86400000 / s.bucket_ms());
  }
}

void FillUsage(v1::Usage& u) {
  if (u.mode() == v1::Usage::MODE_UNSPECIFIED) u.set_mode(v1::Usage::ACT);
  if (u.poll_interval_s() == 0) u.set_poll_interval_s(10);
  if (u.idle_cpu_percent() == 0) u.set_idle_cpu_percent(2);
  if (u.busy_cpu_percent() == 0) u.set_busy_cpu_percent(80);
  if (u.idle_period_s() == 0) u.set_idle_period_s(600);
  if (u.busy_period_s() == 0) u.set_busy_period_s(60);
  if (u.idle_network_bytes_per_s() == 0) u.set_idle_network_bytes_per_s(50);
}

void FillWorkloadClass(v1::WorkloadClass& w) {
  if (w.vcpus() == 0) w.set_vcpus(1);
  if (w.memory_mib() == 0) w.set_memory_mib(256);
  if (w.max_vcpus() == 0) w.set_max_vcpus(w.vcpus());
  if (w.max_memory_mib() == 0) w.set_max_memory_mib(w.memory_mib());
}

void FillService(v1::Service& s) {
  s.set_name(absl::AsciiStrToLower(s.name()));
  if (s.requests_per_vm() == 0) s.set_requests_per_vm(600);
  if (s.prefix_length() == 0) {
    if (absl::StatusOr<net::Ipv4HostRange> pool = net::ParseIpv4Pool(s.address_pool()); pool.ok()) {
      s.set_prefix_length(static_cast<uint32_t>(pool->prefix_length));
    }
  }
}

void FillZone(v1::Zone& zone, int index) {
  if (!zone.name().empty()) zone.set_name(dns::CanonicalName(zone.name()));
  if (zone.id() == 0) zone.set_id(index + 1);
  if (zone.apex_ttl() == 0) zone.set_apex_ttl(3600);
  for (auto& ns : *zone.mutable_nameservers()) ns = dns::CanonicalName(ns);
  for (auto& glue : *zone.mutable_nameserver_addresses()) {
    glue.set_name(dns::CanonicalName(glue.name()));
  }
  v1::Soa& soa = *zone.mutable_soa();
  if (soa.mname().empty() && zone.nameservers_size() > 0) soa.set_mname(zone.nameservers(0));
  if (soa.rname().empty() && !zone.name().empty()) soa.set_rname("hostmaster." + zone.name());
  if (!soa.mname().empty()) soa.set_mname(dns::CanonicalName(soa.mname()));
  if (!soa.rname().empty()) soa.set_rname(dns::CanonicalName(soa.rname()));
  if (soa.serial() == 0) soa.set_serial(1);
  if (soa.refresh() == 0) soa.set_refresh(3600);
  if (soa.retry() == 0) soa.set_retry(600);
  if (soa.expire() == 0) soa.set_expire(604800);
  if (soa.minimum() == 0) soa.set_minimum(60);
  for (auto& svc : *zone.mutable_services()) FillService(svc);
}

}  // namespace

void FillDefaults(PpeConfig& c) {
  FillTopLevel(c);
  FillHypervisor(*c.mutable_hypervisor());
  FillCpt(*c.mutable_cpt(), c.state_dir());
  FillAnswers(*c.mutable_answers());
  FillRegistry(*c.mutable_registry(), c.state_dir(), c.answers().ttl());
  FillLimits(*c.mutable_limits());
  FillScaler(*c.mutable_scaler());
  FillUsage(*c.mutable_usage());
  for (auto& w : *c.mutable_workload_classes()) FillWorkloadClass(w);
  for (int z = 0; z < c.zones_size(); ++z) FillZone(*c.mutable_zones(z), z);
  for (auto& host : *c.mutable_hosts()) FillHost(host);
  for (auto& d : *c.mutable_region_distances()) FillRegionDistance(d);
}

}  // namespace ppe::config
