#include "ppe-service/server/ppe_app.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/geoip_db.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe-service/store/open_store.h"
#include "ppe-service/vm/readiness_probe.h"

namespace ppe::server {

// Holds the Resolver port while the PPE starts: grpc.health.v1.Health says
// NOT_SERVING, every other method UNAVAILABLE (the plugin answers fallback).
class PpeApp::StartingServer {
 public:
  static std::unique_ptr<StartingServer> Listen(const std::string& listen) {
    auto out = std::make_unique<StartingServer>();
    grpc::ServerBuilder builder;
    // gRPC sets SO_REUSEPORT by default: a second server on the same port would
    // start and share its connections. Refuse to start instead.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    int port = 0;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterCallbackGenericService(&out->unavailable_);
    out->server_ = builder.BuildAndStart();
    if (out->server_ == nullptr || port == 0) return nullptr;
    out->server_->GetHealthCheckService()->SetServingStatus(false);
    return out;
  }
  ~StartingServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

 private:
  class Unavailable final : public grpc::CallbackGenericService {
    grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
      class Reactor final : public grpc::ServerGenericBidiReactor {
       public:
        Reactor() { Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "restoring VMs")); }
        void OnDone() override { delete this; }
      };
      return new Reactor();
    }
  };
  Unavailable unavailable_;
  std::unique_ptr<grpc::Server> server_;  // after unavailable_: destroyed first
};

absl::StatusOr<std::unique_ptr<PpeApp>> PpeApp::Create(ppe::config::v1::PpeConfig config) {
  std::unique_ptr<PpeApp> app(new PpeApp());
  app->config_ = std::move(config);
  PPE_RETURN_IF_ERROR(app->OpenState());
  PPE_RETURN_IF_ERROR(app->OpenRegistryAndVms());
  PPE_RETURN_IF_ERROR(app->RestoreVms());
  PPE_RETURN_IF_ERROR(app->StartHousekeeping());
  app->BuildServices();
  PPE_RETURN_IF_ERROR(app->Serve());
  return app;
}

absl::Status PpeApp::OpenState() {
  const auto& c = config_;
  // Admin auth is checked, and its files read, before anything is created.
  PPE_ASSIGN_OR_RETURN(admin_auth_, AdminAuthorizer::Create(c));

  std::error_code ec;
  std::filesystem::create_directories(c.state_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("state_dir ", c.state_dir(), ": ", ec.message()));
  chmod(c.state_dir().c_str(), 0700);

  PPE_ASSIGN_OR_RETURN(cpt::KeyRing keys, cpt::KeyRing::LoadOrCreate(c.cpt().key_file()));
  codec_.emplace(std::move(keys), c.cpt().length());
  {  // a rotation (the operator's new key file on every replica) applies without a restart
    auto mtime = [path = c.cpt().key_file()]() -> int64_t {
      struct stat st {};
      if (stat(path.c_str(), &st) != 0) return 0;
      return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    };
    auto seen = std::make_shared<int64_t>(mtime());
    cpt::CptCodec* codec = &*codec_;
    key_reload_.Start(absl::Seconds(1), [codec, mtime, seen, path = c.cpt().key_file()] {
      const int64_t now = mtime();
      if (now == 0 || now == *seen) return;
      absl::StatusOr<cpt::KeyRing> ring = cpt::KeyRing::LoadOrCreate(path);
      if (!ring.ok()) {
        spdlog::warn("CPT key file {} changed but cannot be read: {}", path,
                     ring.status().message());
        return;
      }
      *seen = now;
      const int version = ring->current_version();
      codec->SetKeys(std::move(*ring));
      spdlog::info("CPT key ring reloaded from {}: issuing with key version {}", path, version);
    });
  }

  for (const auto& rule : c.regions()) {
    PPE_RETURN_IF_ERROR(regions_.Add(rule.cidr(), rule.region()));
  }
  if (!c.geoip().database().empty()) {
    PPE_ASSIGN_OR_RETURN(std::unique_ptr<cpt::GeoIpDb> geoip,
                         cpt::GeoIpDb::Open(c.geoip().database(), c.geoip().path()));
    regions_.SetGeoIp(std::move(geoip));
  }
  return absl::OkStatus();
}

absl::Status PpeApp::OpenRegistryAndVms() {
  const auto& c = config_;
  // The hypervisor hosts (one implicit host without `hosts`) and the services.
  PPE_ASSIGN_OR_RETURN(hosts_, vm::HostsFromConfig(c));
  PPE_ASSIGN_OR_RETURN(vm::VmManager::Options vm_options, vm::VmManager::OptionsFromConfig(c));
  boot_timeout_ = vm_options.boot_timeout;

  // The durable registry: loaded into memory, then libvirt is made to match it
  // before the first query is served.
  const store::StoreOptions store_options = store::StoreOptionsFromConfig(c.registry());
  PPE_ASSIGN_OR_RETURN(store_, store::OpenRegistryStore(store_options));
  registry_ = std::make_unique<registry::Registry>(*store_);
  PPE_RETURN_IF_ERROR(registry_->Load());
  const bool replicated = store_options.kind == store::StoreOptions::Kind::kEtcd;
  // Replicas: other replicas' writes reach the index through a watch.
  if (replicated) PPE_RETURN_IF_ERROR(registry_->Follow());

  workers_ = std::make_unique<ThreadPool>(static_cast<int>(c.worker_threads()));
  timers_ = std::make_unique<TimerQueue>();
  vms_ = std::make_unique<vm::VmManager>(hosts_.specs, hosts_.distances, *registry_,
                                         std::move(vm_options.services), *workers_,
                                         WallClock::Instance(), vm_options.limits, hosts_.options);
  if (replicated) {
    PPE_ASSIGN_OR_RETURN(
        replica_, cluster::Replica::Start(static_cast<store::EtcdRegistryStore&>(*store_),
                                          *registry_, cluster::Replica::OptionsFromConfig(c)));
    cluster::Replica* r = replica_.get();
    vms_->set_allocation_lock(
        [r](const std::string& name) { return r->Lock(name, absl::Seconds(30)); });
    vms_->set_leader_gate(r->leader_gate());
  }
  return absl::OkStatus();
}

absl::Status PpeApp::RestoreVms() {
  // While the reconcile restores VMs, the Resolver port is held and answers
  // only grpc.health.v1.Health: NOT_SERVING (progress is in the log).
  // Replicas: the leader reconciles when elected, the others serve at once.
  grpc::EnableDefaultHealthCheckService(true);
  starting_ = StartingServer::Listen(config_.listen());
  if (starting_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.listen()));
  }
  if (replica_ == nullptr) {
    PPE_ASSIGN_OR_RETURN(last_reconcile_, vms_->Reconcile());
  }
  // Real machines are ready when their service port answers.
  vms_->set_readiness_check([boot_timeout = boot_timeout_](const registry::VmRecord& vm,
                                                           const vm::ServicePlacement& placement) {
    return vm::WaitReady(vm.ip, static_cast<int>(placement.probe_port), absl::Now() + boot_timeout,
                         absl::Milliseconds(20));
  });
  vms_->RefillSpares();
  // Several hosts: one that stays unreachable has its VMs moved (vm_manager.h).
  if (config_.hosts_size() > 0) vms_->StartHostMonitor(hosts_.check_interval);
  return absl::OkStatus();
}

absl::Status PpeApp::StartHousekeeping() {
  const bool replicated = replica_ != nullptr;
  // VMs of an invalidated or expired profile keep running registry.drain_s:
  // twice the TTL their addresses were handed out with, at least a minute.
  const lifecycle::Janitor::Options janitor_options =
      lifecycle::Janitor::OptionsFromConfig(config_);
  janitor_ = std::make_unique<lifecycle::Janitor>(*registry_, *vms_, WallClock::Instance(),
                                                  janitor_options);
  if (!replicated) janitor_->Start();
  demand_ = std::make_unique<scaler::DemandTracker>();
  scaler::Scaler::Options scaling = scaler::Scaler::OptionsFromConfig(config_);
  drain_ = scaling.drain;
  bucket_ = scaling.bucket;
  scaler_ =
      std::make_unique<scaler::Scaler>(*registry_, *vms_, *demand_, *workers_,
                                       WallClock::Instance(), std::move(scaling), store_.get());
  PPE_RETURN_IF_ERROR(scaler_->Load());
  if (std::optional<vm::UsageMonitor::Options> usage =
          vm::UsageMonitor::OptionsFromConfig(config_)) {
    std::vector<vm::Hypervisor*> hypervisors;
    for (const auto& h : hosts_.hypervisors) hypervisors.push_back(h.get());
    const bool act = usage->mode == vm::UsageMonitor::Mode::kAct;
    usage_ = std::make_unique<vm::UsageMonitor>(std::move(hypervisors), *registry_, *vms_,
                                                WallClock::Instance(), std::move(*usage));
    scaler::Scaler* scaler = scaler_.get();
    usage_->set_min_vms([scaler](const std::string& cpt, const std::string& service) {
      return scaler->MinVms(cpt, service);
    });
    if (act) scaler_->set_usage_signal(usage_.get());
    if (replica_) usage_->set_leader_gate(replica_->leader_gate());
    usage_->Start();
  }
  if (!replicated) {
    scaler_->Start();
    return absl::OkStatus();
  }
  // The leader's loops: start-up reconcile, janitor and scaler, fenced.
  replica_->OnElected([this] {
    absl::StatusOr<vm::VmManager::ReconcileReport> reconciled = vms_->Reconcile();
    if (reconciled.ok()) {
      last_reconcile_ = *reconciled;
    } else {
      spdlog::warn("reconcile as leader failed: {}", reconciled.status().message());
    }
    // The previous leader's demand history, from its checkpoints.
    if (absl::Status s = scaler_->Load(); !s.ok())
      spdlog::warn("demand history reload as leader failed: {}", s.message());
    vms_->RefillSpares();
  });
  replica_->RunWhileLeader("janitor", janitor_options.interval, [this] { janitor_->Tick(); });
  replica_->RunWhileLeader("scaler", bucket_, [this] { scaler_->Tick(); });
  replica_->RunWhileLeader("spares", absl::Seconds(1), [this] { vms_->RefillSpares(); });
  replica_->Campaign();
  // A follower's demand goes to the leader's scaler.
  demand_forwarder_ = std::make_unique<cluster::DemandForwarder>(
      *demand_, cluster::DemandForwarder::LeaderOf(*replica_),
      cluster::DemandForwarder::Options{.interval = std::min(absl::Seconds(1), bucket_ / 4),
                                        .sender = replica_->id()});
  demand_forwarder_->Start();
  // Every replica writes its profiles' last_seen.
  seen_flush_.Start(janitor_options.interval, [this] { registry_->FlushLastSeen().IgnoreError(); });
  return absl::OkStatus();
}

void PpeApp::BuildServices() {
  engine_ = std::make_unique<resolver::ResolverEngine>(
      resolver::ResolverEngine::OptionsFromConfig(config_), *codec_, regions_, *registry_, *vms_,
      *timers_, WallClock::Instance(), demand_.get());
  profile_admin_ =
      std::make_unique<resolver::ProfileAdmin>(resolver::ProfileAdmin::OptionsFromConfig(config_),
                                               *codec_, *registry_, WallClock::Instance());
  // The data plane: plugins watch the answer table.
  ppe::v1::ListZonesResponse zones = engine_->Zones();
  std::vector<std::string> services;
  for (const auto& z : zones.zones()) {
    for (const auto& svc : z.services()) services.push_back(svc.name());
  }
  answer_stream_ = std::make_unique<resolver::AnswerStream>(
      *registry_, std::move(services), std::move(zones), WallClock::Instance(),
      resolver::AnswerStream::OptionsFromConfig(config_));
  answer_stream_->Start();
  resolver::AnswerStream* stream = answer_stream_.get();
  engine_->set_cohort_observer([stream](const std::string& service, const std::string& client,
                                        uint32_t bucket, const std::string& cpt, uint32_t scope) {
    stream->OnCohortAnswer(service, client, bucket, cpt, scope);
  });
  cohort_expiry_.Start(absl::Seconds(10),
                       [stream] { stream->ExpireCohorts(stream->CurrentBucket()); });

  resolver_service_ = std::make_unique<ResolverServiceImpl>(*engine_);
  resolver_service_->set_data_plane(answer_stream_.get(), registry_.get(), demand_.get());
  admin_service_ = std::make_unique<AdminServiceImpl>(*profile_admin_, *registry_, *workers_);
  admin_service_->set_status_provider([this] { return Status(); });
  admin_service_->set_scaling(scaler_.get(), vms_.get(), demand_.get(), drain_, bucket_);
  admin_service_->set_authorizer(admin_auth_.get());
}

absl::Status PpeApp::Serve() {
  const auto& c = config_;
  if (!c.metrics_listen().empty()) {
    metrics_ = std::make_shared<MetricsCollector>(*engine_, *registry_, *vms_, *scaler_);
    metrics_->set_usage(usage_.get());
    if (replica_) {
      metrics_->set_cluster(replica_.get(), demand_forwarder_.get(),
                            &resolver_service_->forwarded());
    }
    PPE_ASSIGN_OR_RETURN(metrics_exposer_, ServeMetrics(c.metrics_listen(), metrics_));
  }
  // grpc.health.v1.Health on both ports: SERVING once start-up is done.
  starting_.reset();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // as in StartingServer
  builder.AddListeningPort(c.listen(), grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(resolver_service_.get());
  if (c.admin_listen().empty()) builder.RegisterService(admin_service_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", c.listen()));
  }
  admin_port_ = port_;
  if (!c.admin_listen().empty()) {
    grpc::ServerBuilder admin;
    admin.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    admin.AddListeningPort(c.admin_listen(), admin_auth_->ServerCredentials(), &admin_port_);
    admin.RegisterService(admin_service_.get());
    admin_server_ = admin.BuildAndStart();
    if (admin_server_ == nullptr || admin_port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on admin_listen ", c.admin_listen()));
    }
  }
  spdlog::info("admin service on port {} (auth {}{})", admin_port_, admin_auth_->mode_name(),
               admin_auth_->tls() ? ", TLS" : "");
  spdlog::info("ppe-server listening on {} (port {}), hypervisor {}", c.listen(), port_,
               c.hypervisor().uri());
  return absl::OkStatus();
}

absl::StatusOr<ppe::v1::StatusResponse> PpeApp::Status() const {
  ppe::v1::StatusResponse out;
  out.set_registry_instance(registry_->instance_id());
  out.set_hypervisor_uri(config_.hypervisor().uri());
  for (const auto& p : registry_->ListProfiles()) {
    out.set_profiles(out.profiles() + 1);
    if (!p.invalidated) out.set_active_profiles(out.active_profiles() + 1);
  }
  for (const auto& vm : registry_->ListVms()) {
    out.set_vms(out.vms() + 1);
    (*out.mutable_vms_by_state())[std::string(registry::VmStateName(vm.state))]++;
  }
  for (const auto& hypervisor : hosts_.hypervisors) {
    absl::StatusOr<std::vector<vm::DomainInfo>> domains = hypervisor->List();
    if (!domains.ok()) {
      if (hosts_.hypervisors.size() == 1) return domains.status();
      continue;  // a host that is down counts no domains
    }
    for (const auto& d : *domains) {
      if (!d.tag || d.tag->registry != registry_->instance_id()) continue;
      out.set_hypervisor_domains(out.hypervisor_domains() + 1);
      if (d.running) out.set_hypervisor_running(out.hypervisor_running() + 1);
    }
  }
  auto* r = out.mutable_last_reconcile();
  r->set_adopted(last_reconcile_.adopted);
  r->set_restored(last_reconcile_.restored);
  r->set_released(last_reconcile_.released);
  r->set_orphans_destroyed(last_reconcile_.orphans_destroyed);
  r->set_failed(last_reconcile_.failed);
  out.set_inflight_allocations(vms_->inflight());
  out.set_spares_claimed(vms_->spares_claimed());
  scaler::Scaler::Stats scaling = scaler_->stats();
  out.set_scale_ups(scaling.scale_ups);
  out.set_scale_downs(scaling.scale_downs);
  out.set_scale_outs(scaling.scale_outs);
  out.set_boot_time_ms(absl::ToInt64Milliseconds(vms_->typical_boot_time()));
  out.set_scaler_budget_denied_last(scaling.budget_denied_last);
  out.set_scaler_budget_denied_total(scaling.budget_denied_total);
  out.set_scaler_budget(scaling.budget);
  if (replica_) {
    out.set_replica_id(replica_->id());
    out.set_fenced_refusals(replica_->fenced_refusals());
    out.set_watched_revision(registry_->watched_revision());
    // Without etcd (no quorum, unreachable) the status still answers, from
    // what this replica holds, and says so.
    cluster::Replica::View view = replica_->StatusView();
    out.set_leader(view.leader);
    out.set_cluster_view_stale(view.stale);
    if (view.read_at != absl::InfinitePast()) {
      out.set_cluster_view_unix_ms(absl::ToUnixMillis(view.read_at));
    }
    if (view.unreachable_since != absl::InfiniteFuture()) {
      out.set_etcd_unreachable_since_unix_ms(absl::ToUnixMillis(view.unreachable_since));
      out.set_etcd_error(view.etcd_error);
    }
    for (const cluster::Replica::Member& m : view.members) {
      ppe::v1::ReplicaStatus* r = out.add_replicas();
      r->set_id(m.id);
      r->set_address(m.address);
      r->set_watched_revision(m.watched_revision);
      r->set_watch_lag_ms(m.watch_lag_ms);
      r->set_updated_unix_ms(absl::ToUnixMillis(m.updated));
      r->set_leader(m.leader);
    }
  }
  for (const vm::ExhaustionLog::Entry& e : vms_->exhaustion().Snapshot()) {
    ppe::v1::Exhaustion* x = out.add_exhaustion();
    x->set_limit(vm::LimitName(e.limit));
    x->set_service(e.service);
    x->set_refusals(e.refusals);
    x->set_exhausted(e.exhausted);
    x->set_last_unix_ms(absl::ToUnixMillis(e.last));
  }
  return out;
}

void PpeApp::Shutdown() {
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  if (answer_stream_) answer_stream_->Close();  // watch streams end now, not at the deadline
  if (admin_server_) admin_server_->Shutdown(deadline);
  if (server_) server_->Shutdown(deadline);
}

PpeApp::~PpeApp() {
  Shutdown();
  metrics_exposer_.reset();  // no scrape reads what goes below
  cohort_expiry_.Stop();
  if (usage_) usage_->Stop();
  seen_flush_.Stop();
  key_reload_.Stop();
  if (scaler_) scaler_->Stop();  // a leader's last checkpoint, fenced, while it still leads
  demand_forwarder_.reset();     // uses replica_ and demand_
  replica_.reset();              // the leader's loops end before what they use
  janitor_.reset();
  // Workers finish their allocations before the manager and hypervisor go.
  workers_.reset();
  timers_.reset();
}

}  // namespace ppe::server
