#include "ppe-service/server/ppe_app.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/vm/libvirt_hypervisor.h"

namespace ppe::server {

absl::StatusOr<std::unique_ptr<PpeApp>> PpeApp::Create(ppe::config::v1::PpeConfig config) {
  std::unique_ptr<PpeApp> app(new PpeApp());
  app->config_ = std::move(config);
  const auto& c = app->config_;

  std::error_code ec;
  std::filesystem::create_directories(c.state_dir(), ec);
  if (ec) return absl::InternalError(absl::StrCat("state_dir ", c.state_dir(), ": ", ec.message()));
  chmod(c.state_dir().c_str(), 0700);

  absl::StatusOr<cpt::KeyRing> keys = cpt::KeyRing::LoadOrCreate(c.cpt().key_file());
  if (!keys.ok()) return keys.status();
  app->codec_.emplace(std::move(*keys), c.cpt().length());

  for (const auto& rule : c.regions()) {
    if (absl::Status s = app->regions_.Add(rule.cidr(), rule.region()); !s.ok()) return s;
  }

  absl::StatusOr<std::unique_ptr<vm::LibvirtHypervisor>> hv =
      vm::LibvirtHypervisor::Open(c.hypervisor().uri());
  if (!hv.ok()) return hv.status();
  app->hypervisor_ = std::move(*hv);

  std::vector<vm::ServicePlacement> placements;
  for (const auto& zone : c.zones()) {
    for (const auto& svc : zone.services()) {
      vm::WorkloadShape shape;
      for (const auto& w : c.workload_classes()) {
        if (w.name() == svc.workload_class()) {
          shape = {w.name(), w.vcpus(), w.max_vcpus(), w.memory_mib(), w.max_memory_mib()};
        }
      }
      absl::StatusOr<vm::AddressPool> pool = vm::AddressPool::Create(svc.address_pool());
      if (!pool.ok()) return pool.status();
      placements.push_back(
          {svc.name(), shape, svc.network(), std::make_shared<vm::AddressPool>(std::move(*pool))});
    }
  }

  app->workers_ = std::make_unique<ThreadPool>(static_cast<int>(c.worker_threads()));
  app->timers_ = std::make_unique<TimerQueue>();
  int64_t epoch = absl::ToUnixSeconds(absl::Now());
  app->vms_ =
      std::make_unique<vm::VmManager>(*app->hypervisor_, app->registry_, std::move(placements),
                                      *app->workers_, WallClock::Instance(), epoch);
  app->engine_ = std::make_unique<resolver::ResolverEngine>(
      app->config_, *app->codec_, app->regions_, app->registry_, *app->vms_, *app->timers_,
      WallClock::Instance());
  app->resolver_service_ = std::make_unique<ResolverServiceImpl>(*app->engine_);
  app->admin_service_ = std::make_unique<AdminServiceImpl>(*app->engine_, app->registry_);

  grpc::ServerBuilder builder;
  builder.AddListeningPort(c.listen(), grpc::InsecureServerCredentials(), &app->port_);
  builder.RegisterService(app->resolver_service_.get());
  builder.RegisterService(app->admin_service_.get());
  app->server_ = builder.BuildAndStart();
  if (app->server_ == nullptr || app->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", c.listen()));
  }
  spdlog::info("ppe-server listening on {} (port {}), hypervisor {}", c.listen(), app->port_,
               c.hypervisor().uri());
  return app;
}

void PpeApp::Shutdown() {
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

PpeApp::~PpeApp() {
  Shutdown();
  // Workers finish their allocations before the manager and hypervisor go.
  workers_.reset();
  timers_.reset();
}

}  // namespace ppe::server
