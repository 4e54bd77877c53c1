#include "ppe-service/vm/vm_manager.h"

#include <openssl/rand.h>
#include <algorithm>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/blocking_counter.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe/config/v1/config.pb.h"

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

namespace {

std::vector<HostSpec> SingleHost(Hypervisor& hypervisor,
                                 const std::vector<ServicePlacement>& placements,
                                 const VmLimits& limits) {
  HostSpec host{.name = "default",
                .capacity_vcpus = limits.host_vcpus,
                .capacity_memory_mib = limits.host_memory_mib,
                .hypervisor = &hypervisor};
  for (const ServicePlacement& p : placements) {
    host.pools.push_back({.service = p.service,
                          .addresses = p.addresses,
                          .network = p.network,
                          .bridge = p.bridge,
                          .prefix_length = p.prefix_length,
                          .gateway = p.gateway});
  }
  return {std::move(host)};
}

std::vector<HostCapacity> Capacities(const std::vector<HostSpec>& hosts) {
  std::vector<HostCapacity> out;
  for (const HostSpec& h : hosts) {
    out.push_back({.name = h.name,
                   .region = h.region,
                   .vcpus = h.capacity_vcpus,
                   .memory_mib = h.capacity_memory_mib});
  }
  return out;
}

}  // namespace

absl::StatusOr<VmManager::Options> VmManager::OptionsFromConfig(
    const ppe::config::v1::PpeConfig& c) {
  Options o{.limits = {.max_vms_per_profile = c.limits().max_vms_per_profile(),
                       .max_vms_total = c.limits().max_vms_total()},
            .boot_timeout = absl::Milliseconds(c.hypervisor().boot_timeout_ms())};
  for (const auto& zone : c.zones()) {
    for (const auto& svc : zone.services()) {
      WorkloadShape shape;
      for (const auto& w : c.workload_classes()) {
        if (w.name() == svc.workload_class()) {
          shape = {.name = w.name(),
                   .vcpus = w.vcpus(),
                   .max_vcpus = w.max_vcpus(),
                   .memory_mib = w.memory_mib(),
                   .max_memory_mib = w.max_memory_mib(),
                   .command = {w.command().begin(), w.command().end()},
                   .cpu_shares = w.cpu_shares()};
        }
      }
      ServicePlacement p{.service = svc.name(),
                         .shape = shape,
                         .max_vms = c.limits().max_vms_per_service(),
                         .warm_spares = svc.warm_spares(),
                         .probe_port = svc.probe_port()};
      if (c.hosts_size() == 0) {  // with `hosts`, pools and networks are per host
        PPE_ASSIGN_OR_RETURN(AddressPool pool, AddressPool::Create(svc.address_pool()));
        p.network = svc.network();
        p.addresses = std::make_shared<AddressPool>(std::move(pool));
        p.bridge = svc.bridge();
        p.prefix_length = svc.prefix_length();
        p.gateway = svc.gateway();
      }
      o.services.push_back(std::move(p));
    }
  }
  return o;
}

VmManager::VmManager(Hypervisor& hypervisor, registry::Registry& registry,
                     std::vector<ServicePlacement> placements, ThreadPool& workers,
                     const Clock& clock, VmLimits limits)
    // A copy, not a move: the order in which arguments are evaluated is unspecified.
    : VmManager(SingleHost(hypervisor, placements, limits), RegionDistances(), registry, placements,
                workers, clock, limits) {}

VmManager::VmManager(std::vector<HostSpec> hosts, RegionDistances distances,
                     registry::Registry& registry, std::vector<ServicePlacement> services,
                     ThreadPool& workers, const Clock& clock, VmLimits limits,
                     HostOptions host_options)
    : placer_(Capacities(hosts), std::move(distances)),
      host_options_(host_options),
      registry_(registry),
      workers_(workers),
      clock_(clock),
      limits_(limits) {
  for (HostSpec& spec : hosts) {
    auto host = std::make_unique<Host>();
    for (const HostPool& pool : spec.pools) host->pools[pool.service] = pool;
    host->spec = std::move(spec);
    hosts_.push_back(std::move(host));
  }
  {
    absl::MutexLock lock(&hosts_mu_);
    host_state_.resize(hosts_.size());
  }
  for (auto& p : services) {
    if (p.max_vms == 0) {
      for (const auto& host : hosts_) {
        if (const HostPool* pool = PoolOf(&host - &hosts_[0], p.service)) {
          p.max_vms += pool->addresses->capacity();
        }
      }
    }
    std::string name = p.service;
    placements_.emplace(std::move(name), std::move(p));
  }
}

VmManager::~VmManager() { monitor_.Stop(); }

void VmManager::EnsureVm(const std::string& cpt, const std::string& service,
                         std::optional<Registration> registration, Done done) {
  std::string key = absl::StrCat(cpt, "/", service);
  {
    absl::MutexLock lock(&mu_);
    auto [it, first] = inflight_.try_emplace(key);
    it->second.push_back(std::move(done));
    if (!first) return;  // joins the allocation already in flight
  }
  tasks_.Schedule(workers_, registry::Registry::FenceScope::Bind(
                                [this, cpt, service, registration = std::move(registration)] {
                                  Allocate(cpt, service, registration);
                                }));
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
      PPE_ASSIGN_OR_RETURN(bool created,
                           registry_.RegisterProfile(cpt, registration->attributes,
                                                     registration->origin, clock_.Now()));
      if (created) {
        spdlog::info("profile {} registered ({}, region {}, {})", cpt::CptCodec::Fingerprint(cpt),
                     registration->origin, registration->attributes.region,
                     registration->attributes.time_bucket);
      }
    }
    std::function<void()> release;
    if (allocation_lock_) {
      PPE_ASSIGN_OR_RETURN(std::function<void()> locked,
                           allocation_lock_(absl::StrCat(service, "/", cpt)));
      release = std::move(locked);
    }
    absl::Cleanup unlock = [&release] {
      if (release) release();
    };
    // Another allocation may have finished between the caller's look-up and now.
    std::vector<std::string> ready = registry_.ReadyAddresses(cpt, service, clock_.Now());
    if (!ready.empty()) return ready.front();
    {
      absl::MutexLock lock(&mu_);
      ++arrivals_[service];
    }
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
  if (SpareTarget(placement.service) == 0) return absl::NotFoundError("no spares configured");
  PPE_ASSIGN_OR_RETURN(std::optional<registry::VmRecord> spare,
                       registry_.ClaimSpare(placement.service, cpt));
  RefillSpares();
  if (!spare.has_value()) return absl::NotFoundError("no ready spare");
  spares_claimed_.fetch_add(1);
  spdlog::info("spare {} ({}) claimed by profile {}", spare->name, spare->ip,
               cpt::CptCodec::Fingerprint(cpt));
  return spare->ip;
}

void VmManager::SetSpareTarget(const std::string& service, int target) {
  absl::MutexLock lock(&mu_);
  spare_target_[service] = std::max(0, target);
}

int VmManager::SpareTarget(const std::string& service) const {
  auto placement = placements_.find(service);
  if (placement == placements_.end()) return 0;
  absl::MutexLock lock(&mu_);
  auto target = spare_target_.find(service);
  return std::max(static_cast<int>(placement->second.warm_spares),
                  target == spare_target_.end() ? 0 : target->second);
}

std::map<std::string, int64_t> VmManager::TakeArrivals() {
  absl::MutexLock lock(&mu_);
  return std::exchange(arrivals_, {});
}

void VmManager::RefillSpares() {
  // Replicas: the spares are the leader's (one pool of them, fenced writes).
  if (leader_gate_ && !leader_gate_([this] { RefillSparesAsLeader(); })) return;
  if (!leader_gate_) RefillSparesAsLeader();
}

void VmManager::RefillSparesAsLeader() {
  for (const auto& [service, placement] : placements_) {
    const int target = SpareTarget(service);
    if (target == 0) continue;
    size_t have = 0;
    for (const registry::VmRecord& vm : registry_.Spares(service)) {
      have += vm.state != registry::VmState::kDraining && vm.state != registry::VmState::kFailed;
    }
    int missing;
    {
      absl::MutexLock lock(&mu_);
      int& pending = spares_pending_[service];
      missing = target - static_cast<int>(have) - pending;
      if (missing > 0) pending += missing;
    }
    for (int i = 0; i < missing; ++i) {
      tasks_.Schedule(workers_, registry::Registry::FenceScope::Bind(
                                    [this, p = &placement] { CreateSpare(*p); }));
    }
  }
}

void VmManager::CreateSpare(const ServicePlacement& placement) {
  absl::StatusOr<std::string> ip = CreateVm("", placement);
  {
    absl::MutexLock lock(&mu_);
    --spares_pending_[placement.service];
  }
  if (!ip.ok()) {
    spdlog::warn("spare for {} not created: {}", placement.service, ip.status().message());
    return;
  }
  // The new spare was in the registry (counted as had) while still pending
  // (counted again): a claim in that window computed nothing missing. Look
  // again now that it counts once. Only after a success, so a failing create
  // is not retried in a loop.
  RefillSparesAsLeader();
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
    const int host = HostOf(vm);
    if (host < 0 || !HostUp(host)) continue;
    {  // growing must fit the host too: never an overcommit
      absl::MutexLock place(&place_mu_);
      VmSize used;
      const HostSpec& spec = hosts_[host]->spec;
      const bool limited = spec.capacity_vcpus > 0 || spec.capacity_memory_mib > 0;
      for (const registry::VmRecord& other :
           limited ? registry_.ListVms() : std::vector<registry::VmRecord>{}) {
        if (HostOf(other) != host) continue;
        VmSize size = SizeOf(other);
        used.vcpus += size.vcpus;
        used.memory_mib += size.memory_mib;
      }
      VmSize growth{
          .vcpus = shape.max_vcpus - std::min(shape.vcpus, shape.max_vcpus),
          .memory_mib = shape.max_memory_mib - std::min(shape.memory_mib, shape.max_memory_mib)};
      if (!placer_.Fits(host, growth, used)) {
        spdlog::warn("cannot grow VM {}: host {} has no room", vm.name, hosts_[host]->spec.name);
        continue;
      }
      absl::MutexLock lock(&mu_);
      grown_.insert(vm.name);  // counted at its maximum from now on
    }
    absl::Status s = registry_.CheckFence();  // a deposed leader's late scale-out stops here
    if (s.ok()) {
      s = hosts_[host]->spec.hypervisor->Resize(vm.name, shape.max_vcpus, shape.max_memory_mib);
    }
    if (!s.ok()) {
      absl::MutexLock lock(&mu_);
      grown_.erase(vm.name);
      spdlog::warn("cannot grow VM {}: {}", vm.name, s.message());
      continue;
    }
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

DomainSpec VmManager::SpecFor(const registry::VmRecord& vm, const ServicePlacement& placement,
                              const HostPool& pool) const {
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
                   .network = pool.network,
                   .registry = registry_.instance_id()},
      .bridge = pool.bridge,
      .prefix_length = pool.prefix_length,
      .gateway = pool.gateway,
      .command = Command(placement.shape.command, vm.ip, placement.probe_port),
      .cpu_shares = placement.shape.cpu_shares,
  };
}

int VmManager::HostOf(const registry::VmRecord& vm) const {
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const HostPool* pool = PoolOf(i, vm.service);
    if (pool != nullptr && pool->addresses->Contains(vm.ip)) return static_cast<int>(i);
  }
  return -1;
}

const HostPool* VmManager::PoolOf(size_t host, const std::string& service) const {
  const auto& pools = hosts_[host]->pools;
  auto it = pools.find(service);
  return it == pools.end() ? nullptr : &it->second;
}

VmSize VmManager::SizeOf(const registry::VmRecord& vm) const {
  auto p = placements_.find(vm.service);
  if (p == placements_.end()) return {};
  const WorkloadShape& shape = p->second.shape;
  bool grown;
  {
    absl::MutexLock lock(&mu_);
    grown = grown_.contains(vm.name);
  }
  return grown ? VmSize{std::max(shape.vcpus, shape.max_vcpus),
                        std::max(shape.memory_mib, shape.max_memory_mib)}
               : VmSize{shape.vcpus, shape.memory_mib};
}

bool VmManager::HostUp(size_t host) const {
  absl::MutexLock lock(&hosts_mu_);
  return host_state_[host].up;
}

void VmManager::MarkDown(size_t host, absl::string_view why) {
  absl::MutexLock lock(&hosts_mu_);
  HostState& state = host_state_[host];
  if (!state.up) return;
  state.up = false;
  state.down_since = clock_.Now();
  spdlog::warn("host {} is down ({}); its VMs move to other hosts after {}",
               hosts_[host]->spec.name, why, absl::FormatDuration(host_options_.grace));
}

absl::StatusOr<VmManager::Placed> VmManager::PlaceAndRecord(const std::string& cpt,
                                                            const ServicePlacement& placement,
                                                            int exclude,
                                                            const std::string& replaces) {
  std::string region;
  if (!cpt.empty()) {
    if (std::optional<registry::ProfileRecord> p = registry_.GetProfile(cpt)) {
      region = p->attributes.region;
    }
  }
  const VmSize size{placement.shape.vcpus, placement.shape.memory_mib};
  absl::MutexLock place(&place_mu_);
  // What each host's VMs use now, counted from the registry (every replica's).
  std::vector<HostLoad> loads(hosts_.size()), any_address(hosts_.size());
  for (size_t i = 0; i < hosts_.size(); ++i) {
    const HostPool* pool = PoolOf(i, placement.service);
    bool serves = pool != nullptr && static_cast<int>(i) != exclude && HostUp(i);
    any_address[i].available = serves;
    loads[i].available = serves && pool->addresses->in_use() < pool->addresses->capacity();
  }
  // Without any capacity limit the use does not matter (and is not counted:
  // a copy of every VM record per allocation).
  const bool limited = std::any_of(hosts_.begin(), hosts_.end(), [](const auto& h) {
    return h->spec.capacity_vcpus > 0 || h->spec.capacity_memory_mib > 0;
  });
  for (const registry::VmRecord& vm :
       limited ? registry_.ListVms() : std::vector<registry::VmRecord>{}) {
    int host = HostOf(vm);
    if (host < 0) continue;
    VmSize s = SizeOf(vm);
    loads[host].used.vcpus += s.vcpus;
    loads[host].used.memory_mib += s.memory_mib;
  }
  for (size_t i = 0; i < hosts_.size(); ++i) any_address[i].used = loads[i].used;
  std::optional<Placer::Choice> choice = placer_.Choose(region, size, loads);
  if (!choice) {
    nowhere_.fetch_add(1);
    // Would a host have had room but for its addresses? Then that is the limit.
    bool addresses = placer_.Choose(region, size, any_address).has_value();
    exhaustion_.Hit(
        addresses ? Limit::kAddressPool : Limit::kHostCapacity, placement.service,
        absl::StrCat(addresses ? "no free address" : "no room for ", size.vcpus, " vCPUs and ",
                     size.memory_mib, " MiB", " on any host in reach of region '", region, "'"),
        clock_.Now());
    return absl::ResourceExhaustedError(
        addresses
            ? absl::StrCat("address pool exhausted on every host in reach of region '", region, "'")
            : absl::StrCat("no host in reach of region '", region,
                           "' has room (vCPU or memory) for a VM of ", placement.service));
  }
  const HostPool& pool = *PoolOf(choice->host, placement.service);
  // Replicas sharing the registry (an allocation lock is set) take addresses
  // from the same pools: an address the registry already leases, or that the
  // store refuses as taken, stays reserved here and the next one is tried.
  absl::flat_hash_set<std::string> leased;
  if (allocation_lock_) {
    for (const registry::VmRecord& vm : registry_.ListVms()) {
      if (vm.service == placement.service) leased.insert(vm.ip);
    }
  }
  registry::VmRecord record;
  for (int conflicts = 0;;) {
    PPE_ASSIGN_OR_RETURN(Lease lease, pool.addresses->Acquire());
    if (leased.contains(lease.ip)) continue;
    record = {.name = absl::StrCat("ppe-", placement.service, "-",
                                   name_suffix_ ? name_suffix_() : RandomSuffix()),
              .cpt = cpt,
              .service = placement.service,
              .workload_class = placement.shape.name,
              .ip = lease.ip,
              .mac = lease.mac,
              .state = registry::VmState::kProvisioning,
              .created = clock_.Now(),
              .replaces = replaces};
    // The record and its lease are durable before the domain exists: a crash
    // from here on is repaired by Reconcile, never leaked.
    absl::Status added = registry_.AddVm(record);
    if (added.ok()) break;
    if (absl::IsAlreadyExists(added) && ++conflicts < 16) continue;  // taken meanwhile
    pool.addresses->Release(lease.ip);
    return added;
  }
  exhaustion_.Created(placement.service);
  hosts_[choice->host]->placed.fetch_add(1);
  if (choice->distance > 0) nearby_.fetch_add(1);
  return Placed{std::move(record), choice->host};
}

absl::Status VmManager::Start(const Placed& placed, const ServicePlacement& placement) {
  const registry::VmRecord& record = placed.record;
  Host& host = *hosts_[placed.host];
  const HostPool& pool = *PoolOf(placed.host, placement.service);
  DomainSpec spec = SpecFor(record, placement, pool);
  absl::Time start = absl::Now();
  if (absl::Status s = host.spec.hypervisor->Create(spec); !s.ok()) {
    spdlog::warn("VM {} for {} on host {} failed: {}", spec.name,
                 spec.tag.profile.empty() ? "the spares" : "profile " + spec.tag.profile,
                 host.spec.name, s.message());
    if (registry_.RemoveVm(spec.name).ok()) pool.addresses->Release(record.ip);
    if (absl::IsUnavailable(s) && hosts_.size() > 1) MarkDown(placed.host, s.message());
    return s;
  }
  if (readiness_ && placement.probe_port != 0 &&
      host.spec.hypervisor->capabilities().real_network) {
    PPE_RETURN_IF_ERROR(registry_.SetVmState(spec.name, registry::VmState::kBooting));
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
  spdlog::info("VM {} ({}, {}) on host {} ready for {} in {:.1f} ms", spec.name, placement.service,
               record.ip, host.spec.name,
               record.cpt.empty() ? "the spares" : "profile " + spec.tag.profile,
               absl::ToDoubleMilliseconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::StatusOr<std::string> VmManager::CreateVm(const std::string& cpt,
                                                const ServicePlacement& placement) {
  PPE_RETURN_IF_ERROR(CheckLimits(cpt, placement));
  PPE_ASSIGN_OR_RETURN(Placed placed, PlaceAndRecord(cpt, placement));
  PPE_RETURN_IF_ERROR(Start(placed, placement));
  return placed.record.ip;
}

absl::Status VmManager::ReleaseVm(const std::string& name) {
  std::optional<registry::VmRecord> vm = registry_.GetVm(name);
  if (!vm) return absl::NotFoundError(absl::StrCat("VM ", name));
  const int host = HostOf(*vm);
  if (host >= 0 && !HostUp(host)) {
    // The host is unreachable: the record goes, the domain and its address
    // wait for the host's return (its reconcile destroys the domain).
    PPE_RETURN_IF_ERROR(registry_.RemoveVm(name));
    absl::MutexLock lock(&hosts_mu_);
    host_state_[host].stale[name] = vm->ip;
    spdlog::info("VM {} ({}) released; its domain on host {} (down) is destroyed when it returns",
                 name, vm->ip, hosts_[host]->spec.name);
    return absl::OkStatus();
  }
  if (host >= 0) {
    // A deposed leader's late release must not destroy what the registry keeps.
    if (absl::Status s = registry_.CheckFence(); !s.ok()) return s;
    absl::Status destroyed = hosts_[host]->spec.hypervisor->Destroy(name);
    if (!destroyed.ok() && !absl::IsNotFound(destroyed)) return destroyed;
  }
  PPE_RETURN_IF_ERROR(registry_.RemoveVm(name));
  if (host >= 0) PoolOf(host, vm->service)->addresses->Release(vm->ip);
  {
    absl::MutexLock lock(&mu_);
    grown_.erase(name);
  }
  spdlog::info("VM {} ({}) released", name, vm->ip);
  return absl::OkStatus();
}

absl::StatusOr<VmManager::ReconcileReport> VmManager::Reconcile() {
  ReconcileReport report;
  // Every host is listed first: one that does not answer is down (its VMs
  // move after the grace period; it is reconciled when it returns).
  std::vector<std::optional<std::vector<DomainInfo>>> domains(hosts_.size());
  absl::Status last;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    absl::StatusOr<std::vector<DomainInfo>> listed = hosts_[i]->spec.hypervisor->List();
    if (listed.ok()) {
      domains[i] = std::move(*listed);
      continue;
    }
    last = listed.status();
    if (hosts_.size() == 1) return last;
    MarkDown(i, listed.status().message());
  }
  if (std::none_of(domains.begin(), domains.end(), [](const auto& d) { return d.has_value(); })) {
    return last;
  }
  std::vector<registry::VmRecord> vms;
  for (registry::VmRecord& vm : registry_.ListVms()) {
    // Draining VMs keep serving clients that cached them until the janitor
    // releases them; failed ones (and any of a service or address no longer
    // configured) go.
    bool keep = placements_.contains(vm.service) && vm.state != registry::VmState::kFailed &&
                HostOf(vm) >= 0;
    if (keep) {
      vms.push_back(std::move(vm));
    } else if (ReleaseVm(vm.name).ok()) {
      ++report.released;
    } else {
      ++report.failed;
    }
  }
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (domains[i]) ReconcileHost(i, *domains[i], vms, report);
  }
  spdlog::info(
      "reconciled with the hypervisor: {} adopted, {} restored, {} released, {} orphans "
      "destroyed, {} failed",
      report.adopted, report.restored, report.released, report.orphans_destroyed, report.failed);
  return report;
}

bool VmManager::ReconcileHost(size_t host, const std::vector<DomainInfo>& domains,
                              const std::vector<registry::VmRecord>& vms, ReconcileReport& report) {
  // A deposed leader neither restores nor destroys anything.
  if (absl::Status s = registry_.CheckFence(); !s.ok()) {
    spdlog::warn("host {} not reconciled: {}", hosts_[host]->spec.name, s.message());
    ++report.failed;
    return false;
  }
  Hypervisor& hypervisor = *hosts_[host]->spec.hypervisor;
  absl::flat_hash_map<std::string, const DomainInfo*> by_name;
  for (const DomainInfo& d : domains) by_name[d.name] = &d;
  absl::flat_hash_set<std::string> known, addresses;
  std::vector<Restore> missing;
  for (const registry::VmRecord& vm : vms) {
    if (HostOf(vm) != static_cast<int>(host)) continue;
    auto placement = placements_.find(vm.service);
    if (placement == placements_.end()) continue;
    known.insert(vm.name);
    addresses.insert(vm.ip);
    PoolOf(host, vm.service)->addresses->Reserve(vm.ip);
    auto domain = by_name.find(vm.name);
    bool exists = domain != by_name.end();
    if (exists && domain->second->running) {
      ++report.adopted;
      MarkReady(vm);
    } else {
      missing.push_back({&vm, &placement->second, host, exists});
    }
  }
  RestoreAll(missing, report);
  // Domains tagged by this registry that it does not know on this host: left
  // behind by a crash, or by VMs that moved away while the host was down.
  // One that cannot be destroyed stays stale, its address reserved (this
  // process may never have leased it: another replica's VM, or a crash's).
  absl::flat_hash_map<std::string, std::string> still_there;  // name -> address
  for (const DomainInfo& d : domains) {
    if (!d.tag || d.tag->registry != registry_.instance_id() || known.contains(d.name)) continue;
    if (absl::Status s = hypervisor.Destroy(d.name); !s.ok()) {
      spdlog::warn("stale domain {} ({}) on host {} not destroyed: {}", d.name, d.tag->ip,
                   hosts_[host]->spec.name, s.message());
      ++report.failed;
      still_there[d.name] = d.tag->ip;
      if (const HostPool* pool = PoolOf(host, d.tag->service)) pool->addresses->Reserve(d.tag->ip);
      continue;
    }
    ++report.orphans_destroyed;
    const HostPool* pool = PoolOf(host, d.tag->service);
    if (pool != nullptr && !addresses.contains(d.tag->ip)) pool->addresses->Release(d.tag->ip);
  }
  absl::MutexLock lock(&hosts_mu_);
  auto& stale = host_state_[host].stale;
  for (auto it = stale.begin(); it != stale.end();) {
    if (still_there.contains(it->first)) {
      ++it;
      continue;
    }
    // Destroyed above, or gone with the host: its address is free again.
    for (const auto& [service, pool] : hosts_[host]->pools) {
      if (pool.addresses->Contains(it->second) && !addresses.contains(it->second)) {
        pool.addresses->Release(it->second);
      }
    }
    it = stale.erase(it);
  }
  for (const auto& [name, ip] : still_there) stale[name] = ip;
  return true;
}

VmManager::HostCheckReport VmManager::ProbeEach(HostBack back, std::vector<bool>* answered) {
  HostCheckReport report;
  for (size_t i = 0; i < hosts_.size(); ++i) {
    absl::StatusOr<std::vector<DomainInfo>> domains = hosts_[i]->spec.hypervisor->List();
    if (!domains.ok()) {
      MarkDown(i, domains.status().message());
      ++report.down;
      continue;
    }
    if (answered != nullptr) (*answered)[i] = true;
    if (HostUp(i) || !back(i, *domains)) continue;
    absl::MutexLock lock(&hosts_mu_);
    host_state_[i].up = true;
    host_state_[i].down_since = absl::InfinitePast();
    ++report.returned;
  }
  return report;
}

VmManager::HostCheckReport VmManager::CheckHosts() {
  absl::MutexLock check(&check_mu_);
  std::vector<bool> answered(hosts_.size());
  // A host that is back is reconciled: its stale domains go before it takes VMs again.
  HostCheckReport report = ProbeEach(
      [this](size_t host, const std::vector<DomainInfo>& domains) {
        ReconcileReport reconciled;
        if (!ReconcileHost(host, domains, registry_.ListVms(), reconciled)) return false;
        size_t stale;
        {
          absl::MutexLock lock(&hosts_mu_);
          stale = host_state_[host].stale.size();
        }
        if (stale > 0) {
          spdlog::warn(
              "host {} answers again, but {} of its stale domains could not be destroyed: it "
              "takes no VMs until they are gone (retried every check)",
              hosts_[host]->spec.name, stale);
          return false;
        }
        spdlog::info(
            "host {} is back: {} VMs adopted, {} restored, {} stale domains destroyed, {} failed",
            hosts_[host]->spec.name, reconciled.adopted, reconciled.restored,
            reconciled.orphans_destroyed, reconciled.failed);
        return true;
      },
      &answered);
  // VMs move off a host only while it does not answer.
  for (size_t i = 0; i < hosts_.size(); ++i) {
    if (!answered[i]) MoveAway(i, report);
  }
  return report;
}

void VmManager::MoveAway(size_t host, HostCheckReport& report) {
  {
    absl::MutexLock lock(&hosts_mu_);
    const HostState& state = host_state_[host];
    if (state.up || clock_.Now() - state.down_since < host_options_.grace) return;
  }
  std::vector<registry::VmRecord> to_move, all = registry_.ListVms();
  // Moves begun earlier (by this leader, or one that died) whose replacement
  // is recorded: finished below, never re-created a second time.
  absl::flat_hash_set<std::string> replaced;
  for (const registry::VmRecord& vm : all) {
    if (!vm.replaces.empty() && vm.state != registry::VmState::kFailed) {
      replaced.insert(vm.replaces);
    }
  }
  for (registry::VmRecord& vm : all) {
    if (HostOf(vm) != static_cast<int>(host)) continue;
    if (vm.state == registry::VmState::kReady && replaced.contains(vm.name)) {
      MovedAway(vm, host);
      ++report.moved;
    } else if (vm.state == registry::VmState::kReady) {
      to_move.push_back(std::move(vm));
    } else if (vm.state == registry::VmState::kDraining || vm.state == registry::VmState::kFailed) {
      ReleaseVm(vm.name).IgnoreError();  // nothing to re-create: it waits for the host
    }
  }
  if (to_move.empty()) return;
  spdlog::warn("host {} down for over {}: re-creating its {} VMs elsewhere",
               hosts_[host]->spec.name, absl::FormatDuration(host_options_.grace), to_move.size());
  absl::Mutex mu;
  int moved = 0, stranded = 0;
  absl::BlockingCounter pending(static_cast<int>(to_move.size()));
  for (const registry::VmRecord& vm : to_move) {
    workers_.Schedule(registry::Registry::FenceScope::Bind([&, host] {
      bool ok = Move(vm, host);
      {
        absl::MutexLock lock(&mu);
        ++(ok ? moved : stranded);
      }
      pending.DecrementCount();
    }));
  }
  pending.Wait();
  report.moved += moved;
  report.stranded += stranded;
  spdlog::info("host {}: {} VMs re-created on other hosts, {} with nowhere to go (retried)",
               hosts_[host]->spec.name, moved, stranded);
}

void VmManager::MovedAway(const registry::VmRecord& vm, size_t from) {
  // The replacement serves; the old record goes, its domain and address wait
  // for the host's return. Should the removal fail, the replacement's
  // `replaces` makes the next round finish it.
  if (absl::Status s = registry_.RemoveVm(vm.name); !s.ok()) {
    spdlog::warn("VM {} moved but its old record stays: {}", vm.name, s.message());
    return;
  }
  {
    absl::MutexLock lock(&hosts_mu_);
    host_state_[from].stale[vm.name] = vm.ip;
  }
  hosts_[from]->moved_away.fetch_add(1);
}

bool VmManager::Move(const registry::VmRecord& vm, size_t from) {
  auto placement = placements_.find(vm.service);
  if (placement == placements_.end()) return false;
  absl::StatusOr<Placed> placed =
      PlaceAndRecord(vm.cpt, placement->second, static_cast<int>(from), vm.name);
  if (!placed.ok()) {
    spdlog::warn("VM {} of host {} (down) cannot move: {}", vm.name, hosts_[from]->spec.name,
                 placed.status().message());
    return false;
  }
  if (!Start(*placed, placement->second).ok()) return false;
  MovedAway(vm, from);
  spdlog::info("VM {} ({}) of host {} re-created as {} ({}) on host {}", vm.name, vm.ip,
               hosts_[from]->spec.name, placed->record.name, placed->record.ip,
               hosts_[placed->host]->spec.name);
  return true;
}

void VmManager::StartHostMonitor(absl::Duration interval) {
  monitor_.Start(interval, [this] {
    if (!leader_gate_ || !leader_gate_([this] { CheckHosts(); })) ProbeHosts();
  });
}

VmManager::HostCheckReport VmManager::ProbeHosts() {
  absl::MutexLock check(&check_mu_);
  // A host that is back is not ours to reconcile: it takes VMs again once none
  // of its domains is unknown to the registry (the leader destroyed the stale ones).
  return ProbeEach(
      [this](size_t host, const std::vector<DomainInfo>& domains) {
        for (const DomainInfo& d : domains) {
          if (d.tag && d.tag->registry == registry_.instance_id() && !registry_.GetVm(d.name)) {
            return false;
          }
        }
        spdlog::info("host {} is back (reconciled by the leader)", hosts_[host]->spec.name);
        return true;
      },
      nullptr);
}

std::vector<VmManager::HostStatus> VmManager::Hosts() const {
  std::vector<HostStatus> out;
  for (const auto& host : hosts_) {
    out.push_back({.name = host->spec.name,
                   .region = host->spec.region,
                   .capacity = {host->spec.capacity_vcpus, host->spec.capacity_memory_mib},
                   .placed = host->placed.load(),
                   .moved_away = host->moved_away.load()});
  }
  {
    absl::MutexLock lock(&hosts_mu_);
    for (size_t i = 0; i < hosts_.size(); ++i) out[i].up = host_state_[i].up;
  }
  for (const registry::VmRecord& vm : registry_.ListVms()) {
    int host = HostOf(vm);
    if (host < 0) continue;
    VmSize size = SizeOf(vm);
    out[host].used.vcpus += size.vcpus;
    out[host].used.memory_mib += size.memory_mib;
    ++out[host].vms;
  }
  return out;
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
    workers_.Schedule(registry::Registry::FenceScope::Bind([&, r] {
      const registry::VmRecord& vm = *r.vm;
      Hypervisor& hypervisor = *hosts_[r.host]->spec.hypervisor;
      const HostPool& pool = *PoolOf(r.host, vm.service);
      if (r.stopped) hypervisor.Destroy(vm.name).IgnoreError();  // start it afresh
      absl::Status s = hypervisor.Create(SpecFor(vm, *r.placement, pool));
      if (s.ok()) {
        MarkReady(vm);
      } else {
        spdlog::warn("cannot restore VM {}: {}", vm.name, s.message());
        if (registry_.RemoveVm(vm.name).ok()) pool.addresses->Release(vm.ip);
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
    }));
  }
  pending.Wait();
  report.restored += restored;
  report.failed += failed;
}

}  // namespace ppe::vm
