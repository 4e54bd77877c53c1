#include "ppe-service/server/metrics.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace ppe::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const char* name, const char* help, MetricType type) {
  return MetricFamily{name, help, type, {}};
}

void AddCounter(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

void AddGauge(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

// A family of one unlabelled sample, appended to `out`.
void AddFamily(std::vector<MetricFamily>& out, const char* name, const char* help, MetricType type,
               double value) {
  MetricFamily f = Family(name, help, type);
  if (type == MetricType::Counter) {
    AddCounter(f, value);
  } else {
    AddGauge(f, value);
  }
  out.push_back(std::move(f));
}

}  // namespace

std::vector<MetricFamily> MetricsCollector::Collect() const {
  const auto& s = engine_.stats();
  std::vector<MetricFamily> out;

  auto answers =
      Family("ppe_answers_total", "Address answers by where they came from", MetricType::Counter);
  AddCounter(answers, s.from_pool.load(), {{"source", "pool"}});
  AddCounter(answers, s.allocated.load(), {{"source", "allocated"}});
  AddCounter(answers, s.fallbacks.load(), {{"source", "fallback"}});
  AddCounter(answers, s.shared.load(), {{"source", "shared"}});
  out.push_back(std::move(answers));

  resolver::CohortDemand::Stats c = engine_.cohort_demand().stats();
  auto untagged = Family("ppe_untagged_queries_total",
                         "Untagged queries of unregistered cohorts: counted as demand, discounted "
                         "as QNAME-minimisation probes, or dropped over cohorts.max_tracked",
                         MetricType::Counter);
  AddCounter(untagged, static_cast<double>(c.counted), {{"outcome", "counted"}});
  AddCounter(untagged, static_cast<double>(c.probes), {{"outcome", "probe"}});
  AddCounter(untagged, static_cast<double>(c.dropped), {{"outcome", "dropped"}});
  out.push_back(std::move(untagged));
  AddFamily(out, "ppe_cohorts_registered_total",
            "Cohorts registered as profiles because their untagged demand was "
            "sustained",
            MetricType::Counter, s.cohorts_registered.load());
  AddFamily(out, "ppe_cohorts_tracked",
            "Unregistered cohorts and pending untagged queries held in memory", MetricType::Gauge,
            static_cast<double>(engine_.cohort_demand().tracked()));

  AddFamily(out, "ppe_cold_starts_total",
            "Address queries that found no ready VM (allocated while waiting, or fallback)",
            MetricType::Counter, s.allocated.load() + s.fallbacks.load());

  AddFamily(out, "ppe_unverified_cpt_labels_total",
            "Tagged names whose label is not an active CPT (answered as untagged)",
            MetricType::Counter, s.forged.load());

  AddFamily(out, "ppe_registrations_rate_limited_total",
            "New-profile registrations refused by the per-prefix rate limit", MetricType::Counter,
            s.rate_limited.load());

  auto refusals = Family("ppe_vm_limit_refusals_total",
                         "VM creations refused by a limit (address_pool, service, global, "
                         "host_capacity), by service",
                         MetricType::Counter);
  auto exhausted = Family("ppe_vm_limit_exhausted",
                          "1 while a limit refuses a service's VMs (until one is created again)",
                          MetricType::Gauge);
  for (const vm::ExhaustionLog::Entry& e : vms_.exhaustion().Snapshot()) {
    AddCounter(refusals, static_cast<double>(e.refusals),
               {{"limit", vm::LimitName(e.limit)}, {"service", e.service}});
    AddGauge(exhausted, e.exhausted ? 1 : 0,
             {{"limit", vm::LimitName(e.limit)}, {"service", e.service}});
  }
  out.push_back(std::move(refusals));
  out.push_back(std::move(exhausted));
  AddFamily(out, "ppe_placements_nowhere_total",
            "VM placements that found no host with room in reach of the profile's "
            "region (answered by the fallback)",
            MetricType::Counter, static_cast<double>(vms_.placements_nowhere()));
  AddFamily(out, "ppe_placements_nearby_total",
            "VMs placed outside their profile's region (the nearest region with room)",
            MetricType::Counter, static_cast<double>(vms_.placements_nearby()));
  auto host_up = Family("ppe_host_up", "1 while a hypervisor host answers", MetricType::Gauge);
  auto host_vms = Family("ppe_host_vms", "PPE's VMs on each host", MetricType::Gauge);
  auto host_used = Family("ppe_host_used", "vCPUs and MiB of memory PPE's VMs take on each host",
                          MetricType::Gauge);
  auto host_capacity = Family("ppe_host_capacity",
                              "Each host's configured capacity in vCPUs and MiB (0: not limited)",
                              MetricType::Gauge);
  auto host_placed =
      Family("ppe_host_placed_total", "VMs placed on each host", MetricType::Counter);
  auto host_moved =
      Family("ppe_host_moved_away_total",
             "VMs re-created on other hosts because their host was down", MetricType::Counter);
  for (const vm::VmManager::HostStatus& h : vms_.Hosts()) {
    std::vector<ClientMetric::Label> labels{{"host", h.name}, {"region", h.region}};
    auto with = [&](const char* resource) {
      auto l = labels;
      l.push_back({"resource", resource});
      return l;
    };
    AddGauge(host_up, h.up ? 1 : 0, labels);
    AddGauge(host_vms, static_cast<double>(h.vms), labels);
    AddGauge(host_used, static_cast<double>(h.used.vcpus), with("vcpus"));
    AddGauge(host_used, static_cast<double>(h.used.memory_mib), with("memory_mib"));
    AddGauge(host_capacity, static_cast<double>(h.capacity.vcpus), with("vcpus"));
    AddGauge(host_capacity, static_cast<double>(h.capacity.memory_mib), with("memory_mib"));
    AddCounter(host_placed, static_cast<double>(h.placed), labels);
    AddCounter(host_moved, static_cast<double>(h.moved_away), labels);
  }
  for (auto* f : {&host_up, &host_vms, &host_used, &host_capacity, &host_placed, &host_moved}) {
    out.push_back(std::move(*f));
  }

  scaler::Scaler::Stats scaling = scaler_.stats();
  AddFamily(out, "ppe_scaler_budget_denied_total",
            "VMs the forecasts wanted that the scaler's global budget did not grant",
            MetricType::Counter, static_cast<double>(scaling.budget_denied_total));
  AddFamily(out, "ppe_scaler_budget_denied",
            "VMs the global budget denied in the last scaler bucket", MetricType::Gauge,
            static_cast<double>(scaling.budget_denied_last));
  AddFamily(out, "ppe_scaler_spare_target",
            "Warm spares the arrivals forecast asks for, over all services "
            "(scaler.adaptive_spares)",
            MetricType::Gauge, static_cast<double>(scaling.spare_target));
  AddFamily(out, "ppe_scaler_checkpoint_txns_total",
            "Demand checkpoint transactions the store accepted (scaler.checkpoint_every_buckets)",
            MetricType::Counter, static_cast<double>(scaling.checkpoint_txns));
  AddFamily(out, "ppe_scaler_checkpoint_puts_total",
            "Keys written by the accepted demand checkpoints", MetricType::Counter,
            static_cast<double>(scaling.checkpoint_puts));
  AddFamily(out, "ppe_scaler_checkpoint_bytes_total",
            "Bytes of keys and values written by the accepted demand checkpoints",
            MetricType::Counter, static_cast<double>(scaling.checkpoint_bytes));
  AddFamily(out, "ppe_scaler_checkpoint_errors_total",
            "Demand checkpoints the store refused (etcd without quorum, a deposed leader's "
            "fenced write)",
            MetricType::Counter, static_cast<double>(scaling.checkpoint_errors));

  auto latency =
      Family("ppe_lookup_latency_seconds", "Resolve latency inside the PPE", MetricType::Histogram);
  ClientMetric h;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < LatencyHistogram::kBoundsSeconds.size(); ++i) {
    cumulative += s.latency.count(i);
    h.histogram.bucket.push_back({cumulative, LatencyHistogram::kBoundsSeconds[i]});
  }
  cumulative += s.latency.count(LatencyHistogram::kBoundsSeconds.size());
  h.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  h.histogram.sample_count = cumulative;
  h.histogram.sample_sum = s.latency.sum_seconds();
  latency.metric.push_back(std::move(h));
  out.push_back(std::move(latency));

  std::map<std::pair<std::string, std::string>, int> by_state;  // (state, service)
  std::map<std::string, int> spares;
  for (const registry::VmRecord& vm : registry_.ListVms()) {
    by_state[{std::string(registry::VmStateName(vm.state)), vm.service}]++;
    if (vm.cpt.empty() && vm.state == registry::VmState::kReady) spares[vm.service]++;
  }
  auto machines = Family("ppe_vms", "VMs by state and service", MetricType::Gauge);
  for (const auto& [key, n] : by_state) {
    AddGauge(machines, n, {{"state", key.first}, {"service", key.second}});
  }
  out.push_back(std::move(machines));
  auto spare = Family("ppe_spares_ready", "Ready warm spares by service", MetricType::Gauge);
  for (const auto& [service, n] : spares) AddGauge(spare, n, {{"service", service}});
  out.push_back(std::move(spare));
  AddFamily(out, "ppe_spares_claimed_total", "Spares claimed by first-time profiles",
            MetricType::Counter, static_cast<double>(vms_.spares_claimed()));

  auto actions = Family("ppe_scaling_actions_total", "VMs added or drained by the scaler",
                        MetricType::Counter);
  AddCounter(actions, static_cast<double>(scaling.scale_ups), {{"direction", "up"}});
  AddCounter(actions, static_cast<double>(scaling.scale_downs), {{"direction", "down"}});
  AddCounter(actions, static_cast<double>(scaling.scale_outs), {{"direction", "out"}});
  out.push_back(std::move(actions));
  AddFamily(out, "ppe_forecast_mean_abs_error",
            "Mean absolute one-bucket-ahead forecast error over all series (requests)",
            MetricType::Gauge, scaling.mean_abs_error);
  AddFamily(out, "ppe_scaler_busy_signals_total",
            "Scaler ticks in which busy VMs (hypervisor CPU) raised a pool's target "
            "above its forecast",
            MetricType::Counter, static_cast<double>(scaling.busy_signals));
  CollectUsage(out);
  CollectCluster(out);
  AddFamily(out, "ppe_boot_time_seconds", "Typical create-to-ready time of recent VMs",
            MetricType::Gauge, absl::ToDoubleSeconds(vms_.typical_boot_time()));
  return out;
}

void MetricsCollector::CollectUsage(std::vector<MetricFamily>& out) const {
  if (usage_ == nullptr) return;
  auto cpu = Family("ppe_vm_cpu_seconds_total",
                    "CPU time the ready VMs used while the usage monitor polled them, by service",
                    MetricType::Counter);
  auto net = Family("ppe_vm_network_bytes_total",
                    "Bytes through the ready VMs' NICs (as the VMs see them), by service and "
                    "direction",
                    MetricType::Counter);
  auto memory =
      Family("ppe_vm_memory_bytes", "Memory the ready VMs use now, by service", MetricType::Gauge);
  auto states = Family("ppe_vm_usage_vms",
                       "Ready VMs by measured usage (idle, busy, active, unmeasured) and service",
                       MetricType::Gauge);
  auto released = Family("ppe_vm_idle_releases_total",
                         "VMs drained because the hypervisor measured them idle, by service",
                         MetricType::Counter);
  for (const auto& [service, u] : usage_->ByService()) {
    AddCounter(cpu, u.cpu_seconds, {{"service", service}});
    AddCounter(net, u.rx_bytes, {{"direction", "rx"}, {"service", service}});
    AddCounter(net, u.tx_bytes, {{"direction", "tx"}, {"service", service}});
    AddGauge(memory, u.memory_bytes, {{"service", service}});
    AddGauge(states, u.idle, {{"service", service}, {"state", "idle"}});
    AddGauge(states, u.busy, {{"service", service}, {"state", "busy"}});
    AddGauge(states, u.active, {{"service", service}, {"state", "active"}});
    AddGauge(states, u.unmeasured, {{"service", service}, {"state", "unmeasured"}});
    AddCounter(released, static_cast<double>(u.idle_releases), {{"service", service}});
  }
  out.push_back(std::move(cpu));
  out.push_back(std::move(net));
  out.push_back(std::move(memory));
  out.push_back(std::move(states));
  out.push_back(std::move(released));
  vm::UsageMonitor::PollStats polls = usage_->poll_stats();
  auto poll_count =
      Family("ppe_usage_polls_total", "Hypervisor usage polls, by outcome", MetricType::Counter);
  AddCounter(poll_count, static_cast<double>(polls.polls - polls.errors), {{"outcome", "ok"}});
  AddCounter(poll_count, static_cast<double>(polls.errors), {{"outcome", "error"}});
  out.push_back(std::move(poll_count));
  AddFamily(out, "ppe_usage_poll_seconds", "Duration of the last hypervisor usage poll",
            MetricType::Gauge, absl::ToDoubleSeconds(polls.last_duration));
}

void MetricsCollector::CollectCluster(std::vector<MetricFamily>& out) const {
  if (replica_ == nullptr || forwarder_ == nullptr || batches_ == nullptr) return;
  AddFamily(out, "ppe_etcd_reachable",
            "1 while etcd answers this replica's heartbeat (0: no quorum or no member reachable)",
            MetricType::Gauge, replica_->etcd_reachable() ? 1 : 0);
  AddFamily(out, "ppe_etcd_errors_total",
            "etcd calls of this replica left unanswered (deadline exceeded, unavailable, no "
            "quorum)",
            MetricType::Counter, static_cast<double>(replica_->etcd_errors()));
  AddFamily(out, "ppe_cluster_leader",
            "1 while this replica leads (runs the scaler, the janitor and the reconcile)",
            MetricType::Gauge, replica_->is_leader() ? 1 : 0);
  cluster::DemandForwarder::Stats f = forwarder_->stats();
  AddFamily(out, "ppe_demand_forwarded_total",
            "Requests a follower counted and the leader acknowledged (DemandForwarder)",
            MetricType::Counter, static_cast<double>(f.sent));
  AddFamily(out, "ppe_demand_forward_failures_total",
            "Forwarding rounds whose send to the leader failed (no leader, unreachable, deadline)",
            MetricType::Counter, static_cast<double>(f.failures));
  AddFamily(out, "ppe_demand_held",
            "(CPT, service) series a follower holds for a later round after its last send failed",
            MetricType::Gauge, static_cast<double>(f.held));
  AddFamily(out, "ppe_demand_dropped_total",
            "Requests a follower dropped because more than max_held series waited for a leader",
            MetricType::Counter, static_cast<double>(f.dropped));
  AddFamily(out, "ppe_demand_duplicates_total",
            "Forwarded batches this replica acknowledged without counting them again (a resend "
            "after a lost reply)",
            MetricType::Counter, static_cast<double>(batches_->duplicates()));
}

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> ServeMetrics(
    const std::string& address, std::shared_ptr<prometheus::Collectable> collector) {
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(address);
    exposer->RegisterCollectable(collector);
    return exposer;
  } catch (const std::exception& e) {  // civetweb reports a busy port by throwing
    return absl::UnavailableError(absl::StrCat("metrics_listen ", address, ": ", e.what()));
  }
}

}  // namespace ppe::server
