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
#include "ppe-service/cpt/geoip_db.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/store/sqlite_registry_store.h"
#include "ppe-service/vm/readiness_probe.h"

namespace ppe::server {
namespace {

// Holds the Resolver port while the PPE starts: grpc.health.v1.Health says
// NOT_SERVING, every other method UNAVAILABLE (the plugin answers fallback).
class StartingServer {
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

}  // namespace

absl::StatusOr<std::unique_ptr<PpeApp>> PpeApp::Create(ppe::config::v1::PpeConfig config) {
  std::unique_ptr<PpeApp> app(new PpeApp());
  app->config_ = std::move(config);
  const auto& c = app->config_;

  // Admin auth is checked, and its files read, before anything is created.
  absl::StatusOr<std::unique_ptr<AdminAuthorizer>> admin_auth = AdminAuthorizer::Create(c);
  if (!admin_auth.ok()) return admin_auth.status();
  app->admin_auth_ = std::move(*admin_auth);

  std::error_code ec;
  std::filesystem::create_directories(c.state_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("state_dir ", c.state_dir(), ": ", ec.message()));
  chmod(c.state_dir().c_str(), 0700);

  absl::StatusOr<cpt::KeyRing> keys = cpt::KeyRing::LoadOrCreate(c.cpt().key_file());
  if (!keys.ok()) return keys.status();
  app->codec_.emplace(std::move(*keys), c.cpt().length());
  {  // a rotation (the operator's new key file on every replica) applies without a restart
    auto mtime = [path = c.cpt().key_file()]() -> int64_t {
      struct stat st {};
      if (stat(path.c_str(), &st) != 0) return 0;
      return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    };
    auto seen = std::make_shared<int64_t>(mtime());
    cpt::CptCodec* codec = &*app->codec_;
    app->key_reload_.Start(absl::Seconds(1), [codec, mtime, seen, path = c.cpt().key_file()] {
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
    if (absl::Status s = app->regions_.Add(rule.cidr(), rule.region()); !s.ok()) return s;
  }
  if (!c.geoip().database().empty()) {
    absl::StatusOr<std::unique_ptr<cpt::GeoIpDb>> geoip =
        cpt::GeoIpDb::Open(c.geoip().database(), c.geoip().path());
    if (!geoip.ok()) return geoip.status();
    app->regions_.SetGeoIp(std::move(*geoip));
  }

  // The hypervisor hosts (one implicit host without `hosts`) and the services.
  absl::StatusOr<vm::Hosts> hosts = vm::HostsFromConfig(c);
  if (!hosts.ok()) return hosts.status();
  app->hosts_ = std::move(*hosts);
  absl::StatusOr<std::vector<vm::ServicePlacement>> placements = vm::ServicesFromConfig(c);
  if (!placements.ok()) return placements.status();

  // The durable registry: loaded into memory, then libvirt is made to match it
  // before the first query is served.
  if (c.registry().store() == "memory") {
    app->store_ = std::make_unique<store::MemoryRegistryStore>();
  } else if (c.registry().store() == "etcd") {
    const auto& r = c.registry();
    absl::StatusOr<std::unique_ptr<store::EtcdRegistryStore>> etcd =
        store::EtcdRegistryStore::Connect(
            {.endpoints = {r.etcd_endpoints().begin(), r.etcd_endpoints().end()},
             .prefix = r.etcd_prefix(),
             .ca_file = r.etcd_ca_file(),
             .tls_server_name = r.etcd_tls_server_name(),
             .cert_file = r.etcd_cert_file(),
             .key_file = r.etcd_key_file(),
             .timeout = absl::Milliseconds(r.etcd_timeout_ms())});
    if (!etcd.ok()) return etcd.status();
    app->store_ = std::move(*etcd);
  } else {
    absl::StatusOr<std::unique_ptr<store::SqliteRegistryStore>> db =
        store::SqliteRegistryStore::Open(c.registry().sqlite_path());
    if (!db.ok()) return db.status();
    app->store_ = std::move(*db);
  }
  app->registry_ = std::make_unique<registry::Registry>(*app->store_);
  if (absl::Status s = app->registry_->Load(); !s.ok()) return s;
  const bool replicated = c.registry().store() == "etcd";
  if (replicated) {  // other replicas' writes reach the index through a watch
    if (absl::Status s = app->registry_->Follow(); !s.ok()) return s;
  }

  app->workers_ = std::make_unique<ThreadPool>(static_cast<int>(c.worker_threads()));
  app->timers_ = std::make_unique<TimerQueue>();
  app->vms_ = std::make_unique<vm::VmManager>(
      app->hosts_.specs, app->hosts_.distances, *app->registry_, std::move(*placements),
      *app->workers_, WallClock::Instance(),
      vm::VmLimits{.max_vms_per_profile = c.limits().max_vms_per_profile(),
                   .max_vms_total = c.limits().max_vms_total()},
      app->hosts_.options);
  if (replicated) {
    absl::StatusOr<std::unique_ptr<cluster::Replica>> replica = cluster::Replica::Start(
        static_cast<store::EtcdRegistryStore&>(*app->store_), *app->registry_,
        {.address = c.listen(),
         .ttl = absl::Seconds(c.registry().etcd_lease_ttl_s() > 0 ? c.registry().etcd_lease_ttl_s()
                                                                  : 2)});
    if (!replica.ok()) return replica.status();
    app->replica_ = std::move(*replica);
    cluster::Replica* r = app->replica_.get();
    app->vms_->set_allocation_lock(
        [r](const std::string& name) { return r->Lock(name, absl::Seconds(30)); });
    app->vms_->set_leader_gate(r->leader_gate());
  }
  // While the reconcile restores VMs, the Resolver port is held and answers
  // only grpc.health.v1.Health: NOT_SERVING (progress is in the log).
  // Replicas: the leader reconciles when elected, the others serve at once.
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<StartingServer> starting = StartingServer::Listen(c.listen());
  if (starting == nullptr)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", c.listen()));
  if (!replicated) {
    absl::StatusOr<vm::VmManager::ReconcileReport> reconciled = app->vms_->Reconcile();
    if (!reconciled.ok()) return reconciled.status();
    app->last_reconcile_ = *reconciled;
  }
  // Real machines are ready when their service port answers.
  absl::Duration boot_timeout = absl::Milliseconds(c.hypervisor().boot_timeout_ms());
  app->vms_->set_readiness_check(
      [boot_timeout](const registry::VmRecord& vm, const vm::ServicePlacement& placement) {
        return vm::WaitReady(vm.ip, static_cast<int>(placement.probe_port),
                             absl::Now() + boot_timeout, absl::Milliseconds(20));
      });
  app->vms_->RefillSpares();
  // Several hosts: one that stays unreachable has its VMs moved (vm_manager.h).
  if (c.hosts_size() > 0) app->vms_->StartHostMonitor(app->hosts_.check_interval);
  // VMs of an invalidated or expired profile keep running this long: twice the
  // TTL their addresses were handed out with, at least a minute.
  absl::Duration drain = absl::Seconds(c.registry().drain_s());
  app->janitor_ = std::make_unique<lifecycle::Janitor>(
      *app->registry_, *app->vms_, WallClock::Instance(),
      lifecycle::Janitor::Options{
          .idle_expiry = absl::Seconds(c.registry().idle_profile_expiry_s()),
          .drain = drain,
          .interval = absl::Seconds(c.registry().janitor_interval_s())});
  if (!replicated) app->janitor_->Start();
  const auto& sc = c.scaler();
  scaler::Scaler::Options scaling{
      .mode = sc.mode() == "off"        ? scaler::Scaler::Mode::kOff
              : sc.mode() == "reactive" ? scaler::Scaler::Mode::kReactive
                                        : scaler::Scaler::Mode::kPredictive,
      .bucket = absl::Milliseconds(sc.bucket_ms()),
      .lead_buffer = absl::Milliseconds(sc.lead_buffer_ms()),
      .level = sc.level(),
      .refit_every = static_cast<int>(sc.refit_every_buckets()),
      .cooldown = static_cast<int>(sc.cooldown_buckets()),
      .periods = {sc.seasonal_periods().begin(), sc.seasonal_periods().end()},
      .history_buckets = static_cast<int>(sc.history_buckets()),
      .checkpoint_every = static_cast<int>(sc.checkpoint_every_buckets()),
      .keep_warm = static_cast<int>(sc.keep_warm_buckets()),
      .min_vms = static_cast<int>(sc.min_vms_per_profile()),
      .max_vms = static_cast<int>(c.limits().max_vms_per_profile()),
      .budget = static_cast<int>(c.limits().max_vms_total()),
      .drain = drain,
      .adaptive_spares = sc.adaptive_spares(),
      .pool_sparse = sc.pool_sparse()};
  for (const auto& zone : c.zones()) {
    for (const auto& svc : zone.services()) {
      scaling.requests_per_vm[svc.name()] = svc.requests_per_vm();
    }
  }
  app->demand_ = std::make_unique<scaler::DemandTracker>();
  app->scaler_ =
      std::make_unique<scaler::Scaler>(*app->registry_, *app->vms_, *app->demand_, *app->workers_,
                                       WallClock::Instance(), scaling, app->store_.get());
  if (absl::Status s = app->scaler_->Load(); !s.ok()) return s;
  if (const auto& u = c.usage(); u.mode() != "off") {
    std::vector<vm::Hypervisor*> hypervisors;
    for (const auto& h : app->hosts_.hypervisors) hypervisors.push_back(h.get());
    app->usage_ = std::make_unique<vm::UsageMonitor>(
        std::move(hypervisors), *app->registry_, *app->vms_, WallClock::Instance(),
        vm::UsageMonitor::Options{.mode = u.mode() == "observe" ? vm::UsageMonitor::Mode::kObserve
                                                                : vm::UsageMonitor::Mode::kAct,
                                  .poll_interval = absl::Seconds(u.poll_interval_s()),
                                  .idle_cpu_percent = u.idle_cpu_percent(),
                                  .idle_network_bytes_per_s = u.idle_network_bytes_per_s(),
                                  .idle_period = absl::Seconds(u.idle_period_s()),
                                  .busy_cpu_percent = u.busy_cpu_percent(),
                                  .busy_period = absl::Seconds(u.busy_period_s()),
                                  .drain = drain});
    scaler::Scaler* scaler = app->scaler_.get();
    app->usage_->set_min_vms([scaler](const std::string& cpt, const std::string& service) {
      return scaler->MinVms(cpt, service);
    });
    if (u.mode() == "act") app->scaler_->set_usage_signal(app->usage_.get());
    if (app->replica_) app->usage_->set_leader_gate(app->replica_->leader_gate());
    app->usage_->Start();
  }
  if (replicated) {
    // The leader's loops: start-up reconcile, janitor and scaler, fenced.
    PpeApp* self = app.get();
    app->replica_->OnElected([self] {
      absl::StatusOr<vm::VmManager::ReconcileReport> reconciled = self->vms_->Reconcile();
      if (reconciled.ok()) {
        self->last_reconcile_ = *reconciled;
      } else {
        spdlog::warn("reconcile as leader failed: {}", reconciled.status().message());
      }
      if (absl::Status s = self->scaler_->Load(); !s.ok())  // the previous leader's history
        spdlog::warn("demand history reload as leader failed: {}", s.message());
      self->vms_->RefillSpares();
    });
    app->replica_->RunWhileLeader("janitor", absl::Seconds(c.registry().janitor_interval_s()),
                                  [self] { self->janitor_->Tick(); });
    app->replica_->RunWhileLeader("scaler", absl::Milliseconds(sc.bucket_ms()),
                                  [self] { self->scaler_->Tick(); });
    app->replica_->RunWhileLeader("spares", absl::Seconds(1),
                                  [self] { self->vms_->RefillSpares(); });
    app->replica_->Campaign();
    app->demand_forwarder_ = std::make_unique<cluster::DemandForwarder>(  // followers' demand
        *app->demand_, cluster::DemandForwarder::LeaderOf(*app->replica_),
        cluster::DemandForwarder::Options{
            .interval = std::min(absl::Seconds(1), absl::Milliseconds(sc.bucket_ms()) / 4)});
    app->demand_forwarder_->Start();
    app->seen_flush_.Start(absl::Seconds(c.registry().janitor_interval_s()),
                           [self] { self->registry_->FlushLastSeen().IgnoreError(); });
  } else {
    app->scaler_->Start();
  }
  app->engine_ = std::make_unique<resolver::ResolverEngine>(
      app->config_, *app->codec_, app->regions_, *app->registry_, *app->vms_, *app->timers_,
      WallClock::Instance(), app->demand_.get());
  app->profile_admin_ = std::make_unique<resolver::ProfileAdmin>(
      app->config_, *app->codec_, *app->registry_, WallClock::Instance(), drain);
  {  // the data plane: plugins watch the answer table
    std::vector<std::string> services;
    for (const auto& z : app->config_.zones()) {
      for (const auto& svc : z.services()) services.push_back(svc.name());
    }
    app->answer_stream_ = std::make_unique<resolver::AnswerStream>(
        *app->registry_, std::move(services), app->engine_->Zones(), WallClock::Instance(),
        resolver::AnswerStream::Options{
            .ttl = app->config_.answers().ttl(),
            .time_buckets_per_day = app->config_.cpt().time_buckets_per_day()});
    app->answer_stream_->Start();
    resolver::AnswerStream* stream = app->answer_stream_.get();
    app->engine_->set_cohort_observer(
        [stream](const std::string& service, const std::string& client, uint32_t bucket,
                 const std::string& cpt,
                 uint32_t scope) { stream->OnCohortAnswer(service, client, bucket, cpt, scope); });
    app->cohort_expiry_.Start(absl::Seconds(10),
                              [stream] { stream->ExpireCohorts(stream->CurrentBucket()); });
  }
  app->resolver_service_ = std::make_unique<ResolverServiceImpl>(*app->engine_);
  app->resolver_service_->set_data_plane(app->answer_stream_.get(), app->registry_.get(),
                                         app->demand_.get());
  app->admin_service_ =
      std::make_unique<AdminServiceImpl>(*app->profile_admin_, *app->registry_, *app->workers_);
  app->admin_service_->set_status_provider([app = app.get()] { return app->Status(); });
  app->admin_service_->set_scaling(app->scaler_.get(), app->vms_.get(), app->demand_.get(), drain,
                                   absl::Milliseconds(sc.bucket_ms()));
  app->admin_service_->set_authorizer(app->admin_auth_.get());

  if (!c.metrics_listen().empty()) {
    app->metrics_ = std::make_shared<MetricsCollector>(*app->engine_, *app->registry_, *app->vms_,
                                                       *app->scaler_);
    app->metrics_->set_usage(app->usage_.get());
    absl::StatusOr<std::unique_ptr<prometheus::Exposer>> exposer =
        ServeMetrics(c.metrics_listen(), app->metrics_);
    if (!exposer.ok()) return exposer.status();
    app->metrics_exposer_ = std::move(*exposer);
  }

  // grpc.health.v1.Health on both ports: SERVING once start-up is done.
  starting.reset();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // as in StartingServer
  builder.AddListeningPort(c.listen(), grpc::InsecureServerCredentials(), &app->port_);
  builder.RegisterService(app->resolver_service_.get());
  if (c.admin_listen().empty()) builder.RegisterService(app->admin_service_.get());
  app->server_ = builder.BuildAndStart();
  if (app->server_ == nullptr || app->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", c.listen()));
  }
  app->admin_port_ = app->port_;
  if (!c.admin_listen().empty()) {
    grpc::ServerBuilder admin;
    admin.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    admin.AddListeningPort(c.admin_listen(), app->admin_auth_->ServerCredentials(),
                           &app->admin_port_);
    admin.RegisterService(app->admin_service_.get());
    app->admin_server_ = admin.BuildAndStart();
    if (app->admin_server_ == nullptr || app->admin_port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on admin_listen ", c.admin_listen()));
    }
  }
  spdlog::info("admin service on port {} (auth {}{})", app->admin_port_,
               app->admin_auth_->mode_name(), app->admin_auth_->tls() ? ", TLS" : "");
  spdlog::info("ppe-server listening on {} (port {}), hypervisor {}", c.listen(), app->port_,
               c.hypervisor().uri());
  return app;
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
    if (absl::StatusOr<std::string> leader = replica_->Leader(); leader.ok()) {
      out.set_leader(*leader);
    }
    absl::StatusOr<std::vector<cluster::Replica::Member>> members = replica_->Members();
    if (!members.ok()) return members.status();
    for (const cluster::Replica::Member& m : *members) {
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
