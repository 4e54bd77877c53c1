#include "ppe-service/vm/vm_manager.h"

#include <openssl/rand.h>
#include "absl/strings/string_view.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/cpt/cpt_codec.h"

namespace ppe::vm {
namespace {

std::string RandomSuffix() {
  unsigned char bytes[4];
  RAND_bytes(bytes, sizeof bytes);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

}  // namespace

VmManager::VmManager(Hypervisor& hypervisor, registry::Registry& registry,
                     std::vector<ServicePlacement> placements, ThreadPool& workers,
                     const Clock& clock, int64_t epoch)
    : hypervisor_(hypervisor),
      registry_(registry),
      workers_(workers),
      clock_(clock),
      epoch_(epoch) {
  for (auto& p : placements) {
    std::string name = p.service;
    placements_.emplace(std::move(name), std::move(p));
  }
}

void VmManager::EnsureVm(const std::string& cpt, const std::string& service, Done done) {
  std::string key = absl::StrCat(cpt, "/", service);
  {
    absl::MutexLock lock(&mu_);
    auto [it, first] = inflight_.try_emplace(key);
    it->second.push_back(std::move(done));
    if (!first) return;  // joins the allocation already in flight
  }
  workers_.Schedule([this, cpt, service] { Allocate(cpt, service); });
}

int VmManager::inflight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(inflight_.size());
}

void VmManager::Allocate(const std::string& cpt, const std::string& service) {
  absl::StatusOr<std::string> result;
  auto placement = placements_.find(service);
  if (placement == placements_.end()) {
    result = absl::NotFoundError(absl::StrCat("no placement for service ", service));
  } else {
    // Another allocation may have finished between the caller's look-up and now.
    std::vector<std::string> ready = registry_.ReadyAddresses(cpt, service, clock_.Now());
    result = ready.empty() ? CreateVm(cpt, placement->second) : ready.front();
  }
  std::vector<Done> waiters;
  {
    absl::MutexLock lock(&mu_);
    auto it = inflight_.find(absl::StrCat(cpt, "/", service));
    waiters = std::move(it->second);
    inflight_.erase(it);
  }
  for (Done& done : waiters) done(result);
}

absl::StatusOr<std::string> VmManager::CreateVm(const std::string& cpt,
                                                const ServicePlacement& placement) {
  absl::StatusOr<Lease> lease = placement.addresses->Acquire();
  if (!lease.ok()) return lease.status();
  std::string fingerprint = cpt::CptCodec::Fingerprint(cpt);
  DomainSpec spec{
      .name = absl::StrCat("ppe-", placement.service, "-", RandomSuffix()),
      .vcpus = placement.shape.vcpus,
      .max_vcpus = placement.shape.max_vcpus,
      .memory_mib = placement.shape.memory_mib,
      .max_memory_mib = placement.shape.max_memory_mib,
      .tag = VmTag{.profile = fingerprint,
                   .service = placement.service,
                   .ip = lease->ip,
                   .mac = lease->mac,
                   .network = placement.network,
                   .epoch = epoch_},
  };
  registry::VmRecord record{.name = spec.name,
                            .cpt = cpt,
                            .service = placement.service,
                            .workload_class = placement.shape.name,
                            .ip = lease->ip,
                            .mac = lease->mac,
                            .state = registry::VmState::kProvisioning,
                            .created = clock_.Now()};
  if (absl::Status s = registry_.AddVm(record); !s.ok()) {
    placement.addresses->Release(lease->ip);
    return s;
  }
  absl::Time start = absl::Now();
  if (absl::Status s = hypervisor_.Create(spec); !s.ok()) {
    spdlog::warn("VM {} for profile {} failed: {}", spec.name, fingerprint, s.message());
    registry_.SetVmState(spec.name, registry::VmState::kFailed).IgnoreError();
    placement.addresses->Release(lease->ip);
    return s;
  }
  // Without a real network (test:///) a started domain is ready; a readiness
  // probe for real machines belongs to the lifecycle manager.
  registry_.SetVmState(spec.name, registry::VmState::kReady).IgnoreError();
  spdlog::info("VM {} ({}, {}) ready for profile {} in {:.1f} ms", spec.name, placement.service,
               lease->ip, fingerprint, absl::ToDoubleMilliseconds(absl::Now() - start));
  return lease->ip;
}

}  // namespace ppe::vm
