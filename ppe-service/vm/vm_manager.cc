#include "ppe-service/vm/vm_manager.h"

#include <openssl/rand.h>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/blocking_counter.h"
#include "ppe-service/common/log.h"
#include "ppe-service/cpt/cpt_codec.h"

namespace ppe::vm {
namespace {

std::string RandomSuffix() {
  unsigned char bytes[4];
  RAND_bytes(bytes, sizeof bytes);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

// The workload's argv with "{ip}" and "{port}" replaced.
std::vector<std::string> Command(const std::vector<std::string>& argv, const std::string& ip,
                                 unsigned port) {
  std::vector<std::string> out;
  for (const std::string& a : argv) {
    out.push_back(absl::StrReplaceAll(a, {{"{ip}", ip}, {"{port}", absl::StrCat(port)}}));
  }
  return out;
}

}  // namespace

VmManager::VmManager(Hypervisor& hypervisor, registry::Registry& registry,
                     std::vector<ServicePlacement> placements, ThreadPool& workers,
                     const Clock& clock, VmLimits limits)
    : hypervisor_(hypervisor),
      registry_(registry),
      workers_(workers),
      clock_(clock),
      limits_(limits) {
  for (auto& p : placements) {
    if (p.max_vms == 0) p.max_vms = p.addresses->capacity();
    std::string name = p.service;
    placements_.emplace(std::move(name), std::move(p));
  }
}

void VmManager::EnsureVm(const std::string& cpt, const std::string& service,
                         std::optional<Registration> registration, Done done) {
  std::string key = absl::StrCat(cpt, "/", service);
  {
    absl::MutexLock lock(&mu_);
    auto [it, first] = inflight_.try_emplace(key);
    it->second.push_back(std::move(done));
    if (!first) return;  // joins the allocation already in flight
  }
  tasks_.Schedule(workers_, [this, cpt, service, registration = std::move(registration)] {
    Allocate(cpt, service, registration);
  });
}

int VmManager::inflight() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(inflight_.size());
}

void VmManager::Allocate(const std::string& cpt, const std::string& service,
                         const std::optional<Registration>& registration) {
  absl::StatusOr<std::string> result = [&]() -> absl::StatusOr<std::string> {
    auto placement = placements_.find(service);
    if (placement == placements_.end()) {
      return absl::NotFoundError(absl::StrCat("no placement for service ", service));
    }
    if (registration) {
      absl::StatusOr<bool> created = registry_.RegisterProfile(cpt, registration->attributes,
                                                               registration->origin, clock_.Now());
      if (!created.ok()) return created.status();
      if (*created) {
        spdlog::info("profile {} registered ({}, region {}, {})", cpt::CptCodec::Fingerprint(cpt),
                     registration->origin, registration->attributes.region,
                     registration->attributes.time_bucket);
      }
    }
    std::function<void()> release;
    if (allocation_lock_) {
      absl::StatusOr<std::function<void()>> locked =
          allocation_lock_(absl::StrCat(service, "/", cpt));
      if (!locked.ok()) return locked.status();
      release = std::move(*locked);
    }
    absl::Cleanup unlock = [&release] {
      if (release) release();
    };
    // Another allocation may have finished between the caller's look-up and now.
    std::vector<std::string> ready = registry_.ReadyAddresses(cpt, service, clock_.Now());
    if (!ready.empty()) return ready.front();
    absl::StatusOr<std::string> spare = ClaimSpare(cpt, placement->second);
    if (spare.ok() || !absl::IsNotFound(spare.status())) return spare;
    return CreateVm(cpt, placement->second);
  }();
  std::vector<Done> waiters;
  {
    absl::MutexLock lock(&mu_);
    auto it = inflight_.find(absl::StrCat(cpt, "/", service));
    waiters = std::move(it->second);
    inflight_.erase(it);
  }
  for (Done& done : waiters) done(result);
}

absl::StatusOr<std::string> VmManager::ClaimSpare(const std::string& cpt,
                                                  const ServicePlacement& placement) {
  if (placement.warm_spares == 0) return absl::NotFoundError("no spares configured");
  absl::StatusOr<std::optional<registry::VmRecord>> spare =
      registry_.ClaimSpare(placement.service, cpt);
  if (!spare.ok()) return spare.status();
  RefillSpares();
  if (!spare->has_value()) return absl::NotFoundError("no ready spare");
  spares_claimed_.fetch_add(1);
  spdlog::info("spare {} ({}) claimed by profile {}", (*spare)->name, (*spare)->ip,
               cpt::CptCodec::Fingerprint(cpt));
  return (*spare)->ip;
}

void VmManager::RefillSpares() {
  for (const auto& [service, placement] : placements_) {
    if (placement.warm_spares == 0) continue;
    size_t have = 0;
    for (const registry::VmRecord& vm : registry_.Spares(service)) {
      have += vm.state != registry::VmState::kDraining && vm.state != registry::VmState::kFailed;
    }
    int missing;
    {
      absl::MutexLock lock(&mu_);
      int& pending = spares_pending_[service];
      missing = static_cast<int>(placement.warm_spares) - static_cast<int>(have) - pending;
      if (missing > 0) pending += missing;
    }
    for (int i = 0; i < missing; ++i) {
      tasks_.Schedule(workers_, [this, p = &placement] { CreateSpare(*p); });
    }
  }
}

void VmManager::CreateSpare(const ServicePlacement& placement) {
  absl::StatusOr<std::string> ip = CreateVm("", placement);
  {
    absl::MutexLock lock(&mu_);
    --spares_pending_[placement.service];
  }
  if (!ip.ok())
    spdlog::warn("spare for {} not created: {}", placement.service, ip.status().message());
}

absl::StatusOr<std::string> VmManager::AddVm(const std::string& cpt, const std::string& service) {
  auto placement = placements_.find(service);
  if (placement == placements_.end()) {
    return absl::NotFoundError(absl::StrCat("no placement for service ", service));
  }
  if (!registry_.IsActive(cpt)) return absl::FailedPreconditionError("profile is not active");
  absl::StatusOr<std::string> spare = ClaimSpare(cpt, placement->second);
  if (spare.ok() || !absl::IsNotFound(spare.status())) return spare;
  return CreateVm(cpt, placement->second);
}

absl::StatusOr<int> VmManager::ScaleOut(const std::string& cpt, const std::string& service) {
  auto placement = placements_.find(service);
  if (placement == placements_.end()) {
    return absl::NotFoundError(absl::StrCat("no placement for service ", service));
  }
  const WorkloadShape& shape = placement->second.shape;
  if (shape.max_vcpus <= shape.vcpus && shape.max_memory_mib <= shape.memory_mib) return 0;
  int grown = 0;
  for (const registry::VmRecord& vm : registry_.ListVms(cpt)) {
    if (vm.service != service || vm.state != registry::VmState::kReady) continue;
    {
      absl::MutexLock lock(&mu_);
      if (grown_.contains(vm.name)) continue;
    }
    if (absl::Status s = hypervisor_.Resize(vm.name, shape.max_vcpus, shape.max_memory_mib);
        !s.ok()) {
      spdlog::warn("cannot grow VM {}: {}", vm.name, s.message());
      continue;
    }
    absl::MutexLock lock(&mu_);
    grown_.insert(vm.name);
    ++grown;
  }
  if (grown > 0) {
    spdlog::info("scale out profile {} {}: {} VMs grown to {} vCPU / {} MiB",
                 cpt::CptCodec::Fingerprint(cpt), service, grown, shape.max_vcpus,
                 shape.max_memory_mib);
  }
  return grown;
}

absl::Status VmManager::DrainVm(const std::string& name, absl::Time release_after) {
  std::optional<registry::VmRecord> vm = registry_.GetVm(name);
  if (!vm) return absl::NotFoundError(absl::StrCat("VM ", name));
  if (vm->state == registry::VmState::kDraining) return absl::OkStatus();
  return registry_.SetVmState(name, registry::VmState::kDraining, release_after);
}

absl::Status VmManager::CheckLimits(const std::string& cpt,
                                    const ServicePlacement& placement) const {
  absl::Time now = clock_.Now();
  if (registry_.VmCount() >= limits_.max_vms_total) {
    exhaustion_.Hit(Limit::kGlobal, placement.service,
                    absl::StrCat("max_vms_total ", limits_.max_vms_total), now);
    return absl::ResourceExhaustedError("global VM limit reached");
  }
  if (limits_.host_vcpus > 0 || limits_.host_memory_mib > 0) {
    uint64_t vcpus = placement.shape.vcpus, memory = placement.shape.memory_mib;
    for (const auto& [service, p] : placements_) {
      uint64_t n = registry_.VmCount(service);
      vcpus += n * p.shape.vcpus;
      memory += n * p.shape.memory_mib;
    }
    if ((limits_.host_vcpus > 0 && vcpus > limits_.host_vcpus) ||
        (limits_.host_memory_mib > 0 && memory > limits_.host_memory_mib)) {
      exhaustion_.Hit(Limit::kHostCapacity, placement.service,
                      absl::StrCat(limits_.host_vcpus, " vCPUs, ", limits_.host_memory_mib, " MiB"),
                      now);
      return absl::ResourceExhaustedError("host capacity (vCPU or memory) reached");
    }
  }
  if (registry_.VmCount(placement.service) >= placement.max_vms) {
    exhaustion_.Hit(Limit::kService, placement.service,
                    absl::StrCat("max_vms_per_service ", placement.max_vms), now);
    return absl::ResourceExhaustedError(absl::StrCat("VM limit of service ", placement.service));
  }
  if (!cpt.empty() && registry_.PoolSize(cpt, placement.service) >= limits_.max_vms_per_profile) {
    return absl::ResourceExhaustedError("VM limit per profile reached");
  }
  return absl::OkStatus();
}

DomainSpec VmManager::SpecFor(const registry::VmRecord& vm,
                              const ServicePlacement& placement) const {
  return DomainSpec{
      .name = vm.name,
      .vcpus = placement.shape.vcpus,
      .max_vcpus = placement.shape.max_vcpus,
      .memory_mib = placement.shape.memory_mib,
      .max_memory_mib = placement.shape.max_memory_mib,
      .tag = VmTag{.profile = vm.cpt.empty() ? "" : cpt::CptCodec::Fingerprint(vm.cpt),
                   .service = placement.service,
                   .ip = vm.ip,
                   .mac = vm.mac,
                   .network = placement.network,
                   .registry = registry_.instance_id()},
      .bridge = placement.bridge,
      .prefix_length = placement.prefix_length,
      .gateway = placement.gateway,
      .command = Command(placement.shape.command, vm.ip, placement.probe_port),
      .cpu_shares = placement.shape.cpu_shares,
  };
}

absl::StatusOr<std::string> VmManager::CreateVm(const std::string& cpt,
                                                const ServicePlacement& placement) {
  if (absl::Status s = CheckLimits(cpt, placement); !s.ok()) return s;
  // Other replicas sharing the registry take addresses from the same pool:
  // an address the registry already leases (or that the store refuses as
  // taken) stays reserved here and the next one is tried.
  absl::flat_hash_set<std::string> leased;
  for (const registry::VmRecord& vm : registry_.ListVms()) {
    if (vm.service == placement.service) leased.insert(vm.ip);
  }
  absl::StatusOr<Lease> lease;
  registry::VmRecord record;
  for (int conflicts = 0;;) {
    lease = placement.addresses->Acquire();
    if (!lease.ok()) {
      if (absl::IsResourceExhausted(lease.status())) {
        exhaustion_.Hit(Limit::kAddressPool, placement.service,
                        absl::StrCat(placement.addresses->capacity(), " addresses"), clock_.Now());
      }
      return lease.status();
    }
    if (leased.contains(lease->ip)) continue;
    record = {.name = absl::StrCat("ppe-", placement.service, "-", RandomSuffix()),
              .cpt = cpt,
              .service = placement.service,
              .workload_class = placement.shape.name,
              .ip = lease->ip,
              .mac = lease->mac,
              .state = registry::VmState::kProvisioning,
              .created = clock_.Now()};
    // The record and its lease are durable before the domain exists: a crash
    // from here on is repaired by Reconcile, never leaked.
    absl::Status added = registry_.AddVm(record);
    if (added.ok()) break;
    if (absl::IsAlreadyExists(added) && ++conflicts < 16) continue;  // taken meanwhile
    placement.addresses->Release(lease->ip);
    return added;
  }
  exhaustion_.Created(placement.service);
  DomainSpec spec = SpecFor(record, placement);
  absl::Time start = absl::Now();
  if (absl::Status s = hypervisor_.Create(spec); !s.ok()) {
    spdlog::warn("VM {} for profile {} failed: {}", spec.name, spec.tag.profile, s.message());
    if (registry_.RemoveVm(spec.name).ok()) placement.addresses->Release(lease->ip);
    return s;
  }
  if (readiness_ && placement.probe_port != 0 && hypervisor_.capabilities().real_network) {
    if (absl::Status s = registry_.SetVmState(spec.name, registry::VmState::kBooting); !s.ok()) {
      return s;
    }
    if (absl::Status s = readiness_(record, placement); !s.ok()) {
      spdlog::warn("VM {} never became ready: {}", spec.name, s.message());
      ReleaseVm(spec.name).IgnoreError();
      return s;
    }
  }
  if (absl::Status s = registry_.SetVmState(spec.name, registry::VmState::kReady); !s.ok()) {
    return s;  // the domain runs; Reconcile adopts it after a restart
  }
  vms_created_.fetch_add(1);
  int64_t took = absl::ToInt64Microseconds(absl::Now() - start);
  int64_t avg = boot_time_us_.load(std::memory_order_relaxed);
  boot_time_us_.store(vms_created_.load() == 1 ? took : (7 * avg + took) / 8,
                      std::memory_order_relaxed);
  spdlog::info("VM {} ({}, {}) ready for {} in {:.1f} ms", spec.name, placement.service, lease->ip,
               cpt.empty() ? "the spares" : "profile " + spec.tag.profile,
               absl::ToDoubleMilliseconds(absl::Now() - start));
  return lease->ip;
}

absl::Status VmManager::ReleaseVm(const std::string& name) {
  std::optional<registry::VmRecord> vm = registry_.GetVm(name);
  if (!vm) return absl::NotFoundError(absl::StrCat("VM ", name));
  absl::Status destroyed = hypervisor_.Destroy(name);
  if (!destroyed.ok() && !absl::IsNotFound(destroyed)) return destroyed;
  if (absl::Status s = registry_.RemoveVm(name); !s.ok()) return s;
  if (auto p = placements_.find(vm->service); p != placements_.end()) {
    p->second.addresses->Release(vm->ip);
  }
  spdlog::info("VM {} ({}) released", name, vm->ip);
  return absl::OkStatus();
}

absl::StatusOr<VmManager::ReconcileReport> VmManager::Reconcile() {
  ReconcileReport report;
  absl::StatusOr<std::vector<DomainInfo>> domains = hypervisor_.List();
  if (!domains.ok()) return domains.status();
  absl::flat_hash_map<std::string, const DomainInfo*> by_name;
  for (const DomainInfo& d : *domains) by_name[d.name] = &d;

  std::vector<registry::VmRecord> vms = registry_.ListVms();
  absl::flat_hash_set<std::string> known;
  for (const registry::VmRecord& vm : vms) {
    known.insert(vm.name);
    auto placement = placements_.find(vm.service);
    if (placement != placements_.end()) placement->second.addresses->Reserve(vm.ip);
  }
  std::vector<Restore> missing;
  for (const registry::VmRecord& vm : vms) {
    auto placement = placements_.find(vm.service);
    // Draining VMs keep serving clients that cached them until the janitor
    // releases them; failed ones (and any of a service no longer configured) go.
    bool keep = placement != placements_.end() && vm.state != registry::VmState::kFailed;
    auto domain = by_name.find(vm.name);
    bool exists = domain != by_name.end();
    if (!keep) {
      if (ReleaseVm(vm.name).ok())
        ++report.released;
      else
        ++report.failed;
      continue;
    }
    if (exists && domain->second->running) {
      ++report.adopted;
      MarkReady(vm);
    } else {
      missing.push_back({&vm, &placement->second, exists});
    }
  }
  RestoreAll(missing, report);
  for (const DomainInfo& d : *domains) {
    if (!d.tag || d.tag->registry != registry_.instance_id() || known.contains(d.name)) continue;
    if (hypervisor_.Destroy(d.name).ok())
      ++report.orphans_destroyed;
    else
      ++report.failed;
  }
  spdlog::info(
      "reconciled with the hypervisor: {} adopted, {} restored, {} released, {} orphans "
      "destroyed, {} failed",
      report.adopted, report.restored, report.released, report.orphans_destroyed, report.failed);
  return report;
}

void VmManager::MarkReady(const registry::VmRecord& vm) {
  if (vm.state == registry::VmState::kProvisioning || vm.state == registry::VmState::kBooting) {
    registry_.SetVmState(vm.name, registry::VmState::kReady).IgnoreError();
  }
}

void VmManager::RestoreAll(const std::vector<Restore>& missing, ReconcileReport& report) {
  if (missing.empty()) return;
  const int total = static_cast<int>(missing.size());
  const int step = std::max(1, total / 10);
  spdlog::info("reconcile: 0/{} restored", total);
  absl::Mutex mu;
  int restored = 0, failed = 0;
  absl::BlockingCounter pending(total);
  // At most one restore per worker thread at a time: the pool is the bound.
  for (const Restore& r : missing) {
    workers_.Schedule([&, r] {
      const registry::VmRecord& vm = *r.vm;
      if (r.stopped) hypervisor_.Destroy(vm.name).IgnoreError();  // start it afresh
      absl::Status s = hypervisor_.Create(SpecFor(vm, *r.placement));
      if (s.ok()) {
        MarkReady(vm);
      } else {
        spdlog::warn("cannot restore VM {}: {}", vm.name, s.message());
        if (registry_.RemoveVm(vm.name).ok()) r.placement->addresses->Release(vm.ip);
      }
      {
        absl::MutexLock lock(&mu);
        ++(s.ok() ? restored : failed);
        const int done = restored + failed;
        if (done % step == 0 || done == total) {
          spdlog::info("reconcile: {}/{} restored{}", done, total,
                       failed > 0 ? absl::StrCat(" (", failed, " of them failed)") : "");
        }
      }
      pending.DecrementCount();
    });
  }
  pending.Wait();
  report.restored += restored;
  report.failed += failed;
}

}  // namespace ppe::vm
