#pragma once

#include <memory>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "absl/status/statusor.h"
#include "ppe-service/cluster/demand_forwarder.h"
#include "ppe-service/cluster/replica.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/resolver_engine.h"
#include "ppe-service/scaler/scaler.h"
#include "ppe-service/vm/usage_monitor.h"
#include "ppe-service/vm/vm_manager.h"

namespace ppe::server {

// Prometheus metrics, read from the components' own counters at scrape time,
// so nothing on the lookup path touches a metrics library.
class MetricsCollector final : public prometheus::Collectable {
 public:
  MetricsCollector(const resolver::ResolverEngine& engine, const registry::Registry& registry,
                   const vm::VmManager& vms, const scaler::Scaler& scaler)
      : engine_(engine), registry_(registry), vms_(vms), scaler_(scaler) {}

  // The hypervisor's usage figures (ppe_vm_cpu_seconds_total, ...); may be
  // null (usage mode OFF). Before the first scrape.
  void set_usage(const vm::UsageMonitor* usage) { usage_ = usage; }
  // Replicas on etcd: the replica's view of etcd and its role, the demand
  // forwarder (a follower's side) and the forwarded batches (the leader's
  // side), exported as ppe_etcd_*, ppe_cluster_leader and ppe_demand_*.
  // All three or none (a single process on SQLite). Before the first scrape.
  void set_cluster(const cluster::Replica* replica, const cluster::DemandForwarder* forwarder,
                   const cluster::ForwardedBatches* batches) {
    replica_ = replica;
    forwarder_ = forwarder;
    batches_ = batches;
  }

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void CollectUsage(std::vector<prometheus::MetricFamily>& out) const;
  void CollectCluster(std::vector<prometheus::MetricFamily>& out) const;

  const resolver::ResolverEngine& engine_;
  const registry::Registry& registry_;
  const vm::VmManager& vms_;
  const scaler::Scaler& scaler_;
  const vm::UsageMonitor* usage_ = nullptr;
  const cluster::Replica* replica_ = nullptr;
  const cluster::DemandForwarder* forwarder_ = nullptr;
  const cluster::ForwardedBatches* batches_ = nullptr;
};

// Serves /metrics on `address` ("127.0.0.1:9464").
absl::StatusOr<std::unique_ptr<prometheus::Exposer>> ServeMetrics(
    const std::string& address, std::shared_ptr<prometheus::Collectable> collector);

}  // namespace ppe::server
