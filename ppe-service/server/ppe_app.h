#pragma once

#include <memory>
#include <optional>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "ppe-service/cluster/demand_forwarder.h"
#include "ppe-service/cluster/replica.h"
#include "ppe-service/common/periodic_thread.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/common/timer_queue.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/lifecycle/janitor.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/answer_stream.h"
#include "ppe-service/resolver/profile_admin.h"
#include "ppe-service/resolver/resolver_engine.h"
#include "ppe-service/scaler/scaler.h"
#include "ppe-service/server/admin_auth.h"
#include "ppe-service/server/metrics.h"
#include "ppe-service/server/services.h"
#include "ppe-service/store/registry_store.h"
#include "ppe-service/vm/hosts_from_config.h"
#include "ppe-service/vm/hypervisor.h"
#include "ppe-service/vm/usage_monitor.h"
#include "ppe-service/vm/vm_manager.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::server {

// Everything one PPE process runs, wired from its config. main.cc only parses
// flags and calls Create, then Wait.
class PpeApp {
 public:
  static absl::StatusOr<std::unique_ptr<PpeApp>> Create(ppe::config::v1::PpeConfig config);
  ~PpeApp();

  int port() const { return port_; }
  // Registry and hypervisor counts (calls the hypervisor: blocking).
  absl::StatusOr<ppe::v1::StatusResponse> Status() const;
  // The Admin service's port: admin_listen's when set, else the same as port().
  int admin_port() const { return admin_port_; }
  void Wait() {
    server_->Wait();
    if (admin_server_) admin_server_->Wait();
  }
  void Shutdown();

 private:
  class StartingServer;  // holds the port, NOT_SERVING, until Serve
  PpeApp() = default;
  // Create's steps, in order; each reads config_.
  absl::Status OpenState();           // admin auth, state_dir, CPT keys (reload), region rules
  absl::Status OpenRegistryAndVms();  // hosts, store, registry, VM manager, replica (etcd)
  absl::Status RestoreVms();          // reconcile while the port says NOT_SERVING; host monitor
  absl::Status StartHousekeeping();   // janitor, demand, scaler, usage monitor, leader loops
  void BuildServices();               // engine, profile admin, answer stream, services
  absl::Status Serve();               // metrics and the gRPC ports

  ppe::config::v1::PpeConfig config_;
  std::optional<cpt::CptCodec> codec_;
  cpt::RegionTable regions_;
  std::unique_ptr<store::RegistryStore> store_;
  std::unique_ptr<registry::Registry> registry_;
  // Replicas on etcd: membership, allocation lock, leader election (else null).
  std::unique_ptr<cluster::Replica> replica_;
  std::unique_ptr<cluster::DemandForwarder> demand_forwarder_;  // replicas: a follower's demand
  PeriodicThread seen_flush_;  // replicas: every replica writes its profiles' last_seen
  PeriodicThread key_reload_;  // re-reads the CPT key file when it changes (rotation)
  std::unique_ptr<resolver::AnswerStream> answer_stream_;  // fed by registry_ and engine_
  PeriodicThread cohort_expiry_;
  vm::Hosts hosts_;  // the hypervisor connections: outlive vms_
  std::unique_ptr<ThreadPool> workers_;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<vm::VmManager> vms_;
  vm::VmManager::ReconcileReport last_reconcile_;
  absl::Duration boot_timeout_;  // of a started VM's readiness check
  absl::Duration drain_;         // registry.drain_s
  absl::Duration bucket_;        // scaler.bucket_ms
  std::unique_ptr<lifecycle::Janitor> janitor_;
  std::unique_ptr<scaler::DemandTracker> demand_;
  std::unique_ptr<scaler::Scaler> scaler_;
  std::unique_ptr<vm::UsageMonitor> usage_;  // after scaler_: stopped and destroyed first
  std::shared_ptr<MetricsCollector> metrics_;
  std::unique_ptr<prometheus::Exposer> metrics_exposer_;
  std::unique_ptr<resolver::ResolverEngine> engine_;
  std::unique_ptr<resolver::ProfileAdmin> profile_admin_;
  std::unique_ptr<ResolverServiceImpl> resolver_service_;
  std::unique_ptr<AdminAuthorizer> admin_auth_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<StartingServer> starting_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> admin_server_;  // when admin_listen is set
  int port_ = 0;
  int admin_port_ = 0;
};

}  // namespace ppe::server
