#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/periodic_thread.h"
#include "ppe-service/common/task_tracker.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/cpt/attributes.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/vm/address_pool.h"
#include "ppe-service/vm/exhaustion_log.h"
#include "ppe-service/vm/hypervisor.h"
#include "ppe-service/vm/placement.h"

namespace ppe::config::v1 {
class PpeConfig;  // ppe/config/v1/config.pb.h, needed only by OptionsFromConfig's callers
}  // namespace ppe::config::v1

namespace ppe::vm {

struct WorkloadShape {
  std::string name{};  // "cpu-heavy"
  unsigned vcpus = 1, max_vcpus = 1;
  unsigned memory_mib = 256, max_memory_mib = 256;
  std::vector<std::string> command{};  // containers: argv, with {ip} and {port}
  unsigned cpu_shares = 0;
};

// A service as VmManager provisions it. `network`, `addresses`, `bridge`,
// `prefix_length` and `gateway` describe the service on the single host of the
// one-hypervisor constructor; with several hosts each HostSpec's pools give them.
struct ServicePlacement {
  std::string service{};
  WorkloadShape shape{};
  std::string network{};  // may be empty
  std::shared_ptr<AddressPool> addresses{};
  size_t max_vms = 0;  // 0: the address pool's capacity
  size_t warm_spares = 0;
  unsigned probe_port = 0;  // 0: ready once started
  // Real machines: host bridge, prefix length and gateway of the static address.
  std::string bridge{};
  unsigned prefix_length = 24;
  std::string gateway{};
};

// One service's addresses and network on one host: a VM's address comes
// from the pool of the host it runs on, so pools of different hosts never
// overlap, and the host of a VM is the one whose pool holds its address.
struct HostPool {
  std::string service{};
  std::shared_ptr<AddressPool> addresses{};
  std::string network{};  // libvirt network for DHCP host entries; may be empty
  std::string bridge{};   // real machines: the host bridge (static addresses)
  unsigned prefix_length = 24;
  std::string gateway{};
};

// A hypervisor host: where it is, what PPE may put on it (capacity 0 = not
// limited), its libvirt connection (not owned) and its address pools.
struct HostSpec {
  std::string name{};
  std::string region{};  // empty: serves every region (the implicit single host)
  unsigned capacity_vcpus = 0;
  unsigned capacity_memory_mib = 0;
  Hypervisor* hypervisor = nullptr;
  std::vector<HostPool> pools{};
};

struct HostOptions {
  // A host unreachable this long has its VMs re-created on other hosts.
  absl::Duration grace = absl::Seconds(30);
};

struct VmLimits {
  size_t max_vms_per_profile = 4;
  size_t max_vms_total = 1000;
  // The single host's capacity (one-hypervisor constructor); 0 = unlimited.
  unsigned host_vcpus = 0;
  unsigned host_memory_mib = 0;
};

// Turns "this (CPT, service) needs a VM" into a running, registered domain,
// and keeps libvirt and the registry in step. Blocking hypervisor and store
// calls run on the worker pool; concurrent requests for the same (CPT,
// service) share one allocation (single-flight).
//
// Several hosts: each VM is placed by a Placer (the profile's region, else the
// nearest region with room, else nowhere: RESOURCE_EXHAUSTED and the
// host_capacity exhaustion, never an overcommit). CheckHosts probes every
// host; one unreachable for HostOptions::grace has its VMs re-created on other
// hosts (new name and address, the registry entry replaced), and when it
// returns its stale domains are destroyed before it takes VMs again. An
// address stays reserved until its domain is known to be gone.
class VmManager {
 public:
  using Done = std::function<void(absl::StatusOr<std::string> ip)>;
  // Blocks until the started VM answers (booting -> ready) or returns why not.
  using ReadinessCheck =
      std::function<absl::Status(const registry::VmRecord& vm, const ServicePlacement& placement)>;

  // One host: `hypervisor`, with each service's own pool and network.
  VmManager(Hypervisor& hypervisor, registry::Registry& registry,
            std::vector<ServicePlacement> placements, ThreadPool& workers, const Clock& clock,
            VmLimits limits = {});
  // Several hosts, placed by region and capacity (VmLimits::host_* unused).
  VmManager(std::vector<HostSpec> hosts, RegionDistances distances, registry::Registry& registry,
            std::vector<ServicePlacement> services, ThreadPool& workers, const Clock& clock,
            VmLimits limits = {}, HostOptions host_options = {});
  ~VmManager();

  // The VM side of a PpeConfig (the hosts are HostsFromConfig's): the
  // services and limits the constructor takes, and how long a started VM may
  // take to pass its readiness check.
  struct Options {
    std::vector<ServicePlacement> services{};
    VmLimits limits{};  // max_vms_per_profile, max_vms_total (host capacity is per HostSpec)
    absl::Duration boot_timeout = absl::Seconds(30);
  };
  // A placement per service (its workload class's shape, spares, probe port,
  // limits.max_vms_per_service; with one implicit host, no `hosts`, also a
  // fresh address pool and its network), limits.* and
  // hypervisor.boot_timeout_ms. Fails only on an address pool a checked
  // config would not have.
  static absl::StatusOr<Options> OptionsFromConfig(const ppe::config::v1::PpeConfig& config);

  // A derived profile that is registered by the allocation itself (off the
  // lookup path), so nothing is written for queries that find a ready VM.
  struct Registration {
    cpt::Attributes attributes;
    std::string origin = "dns";
  };

  // Calls `done` once, from a worker thread, with the new VM's address or an
  // error (RESOURCE_EXHAUSTED over a limit, FAILED_PRECONDITION for an
  // invalidated profile, the hypervisor's error).
  void EnsureVm(const std::string& cpt, const std::string& service,
                std::optional<Registration> registration, Done done);

  // One more VM for (cpt, service), now (the scaler's scale-up; blocking).
  absl::StatusOr<std::string> AddVm(const std::string& cpt, const std::string& service);
  // Scale out: the pool's ready VMs grow live to their workload class's maximum
  // vCPUs and memory (where the hypervisor allows). Returns how many grew.
  absl::StatusOr<int> ScaleOut(const std::string& cpt, const std::string& service);
  // The VM stops being answered; it is destroyed after `release_after`.
  absl::Status DrainVm(const std::string& name, absl::Time release_after);
  // Destroys the domain (if it exists) and removes the VM, freeing its lease.
  absl::Status ReleaseVm(const std::string& name);
  // Starts creating spares up to each service's spare target (non-blocking):
  // its configured warm_spares, or the scaler's SetSpareTarget if larger.
  // With a leader gate, only the leader does (inside its fence).
  void RefillSpares();
  // Adaptive warm spares: the scaler sizes each service's spares from its
  // forecast of arrivals (below). Takes effect at the next RefillSpares; spares
  // above the target are not destroyed here (the scaler drains them).
  void SetSpareTarget(const std::string& service, int target);
  int SpareTarget(const std::string& service) const;
  // Arrivals since the last call, by service: allocations for a profile that
  // had no ready VM when its client asked (a first-time or re-awakened
  // client), whether a spare took it or a VM was created. What spares are for.
  std::map<std::string, int64_t> TakeArrivals();
  void set_readiness_check(ReadinessCheck check) { readiness_ = std::move(check); }
  // What follows "ppe-<service>-" in a new VM's name: 8 random hex digits
  // unless set (the replay numbers its VMs, so that its runs repeat).
  void set_name_suffix(std::function<std::string()> suffix) { name_suffix_ = std::move(suffix); }
  // Single flight across processes (replicas sharing an etcd registry): an
  // allocation for (cpt, service) first takes the lock named "<service>/<cpt>"
  // through this (blocking; returns the release), then looks again whether a
  // VM is ready (another replica's allocation) before creating one. Set once,
  // before serving.
  using AllocationLock =
      std::function<absl::StatusOr<std::function<void()>>(const std::string& name)>;
  void set_allocation_lock(AllocationLock lock) { allocation_lock_ = std::move(lock); }
  // Replicas: runs `action` now, inside the leader's fence, when this process
  // leads (true), else returns false (cluster::Replica::RunIfLeader). With a
  // gate, the host monitor's actions (moves, a returning host's reconcile) and
  // the spare refills happen only on the leader. Set once, before serving.
  using LeaderGate = std::function<bool(const std::function<void()>& action)>;
  void set_leader_gate(LeaderGate gate) { leader_gate_ = std::move(gate); }

  // Spares claimed by first-time profiles (cold starts avoided) and VMs created
  // because no spare was left, since start.
  int64_t spares_claimed() const { return spares_claimed_.load(); }
  int64_t vms_created() const { return vms_created_.load(); }
  // Create-to-ready time of recent VMs (moving average; 1 s before any): the
  // scaler's provisioning lead time starts from it.
  absl::Duration typical_boot_time() const {
    return absl::Microseconds(boot_time_us_.load(std::memory_order_relaxed));
  }

  // Start-up: makes libvirt match the registry. Registry VMs whose domain runs
  // are adopted; those whose domain is gone (or stopped) are re-created with
  // the same name, address and MAC; failed ones are released;
  // domains tagged by this registry that it does not know are destroyed.
  // Re-creations run in parallel on the worker pool (one per worker thread),
  // logged as "reconcile: N/M restored"; call it from outside the pool.
  struct ReconcileReport {
    int adopted = 0, restored = 0, released = 0, orphans_destroyed = 0, failed = 0;
  };
  absl::StatusOr<ReconcileReport> Reconcile();

  // Host failover, one round: probes every host (List). A host that fails
  // is marked down; one down for longer than the grace period has its VMs
  // re-created elsewhere (those with nowhere to go stay, and are retried on the
  // next round); a host that answers again is reconciled (its stale domains
  // destroyed, their addresses freed) and takes VMs once none is left (one
  // that cannot be destroyed keeps its address reserved and the host out of
  // placement; retried every round). Blocking; call it from outside the worker pool.
  struct HostCheckReport {
    int down = 0, moved = 0, stranded = 0, returned = 0;
  };
  HostCheckReport CheckHosts();
  // Probing only, for a replica that does not lead: a host that fails is
  // marked down; one that answers again is marked up once none of its domains
  // is unknown to the registry (the leader's CheckHosts destroyed the stale
  // ones). Writes nothing.
  HostCheckReport ProbeHosts();
  // Every `interval` on a thread of its own, until destruction: CheckHosts,
  // or with a leader gate CheckHosts on the leader and ProbeHosts elsewhere.
  void StartHostMonitor(absl::Duration interval);

  struct HostStatus {
    std::string name, region;
    bool up = true;
    VmSize used{}, capacity{};  // capacity 0: not limited
    size_t vms = 0;
    int64_t placed = 0;      // VMs placed on it since start
    int64_t moved_away = 0;  // VMs re-created elsewhere because it was down
  };
  std::vector<HostStatus> Hosts() const;
  // Placements that found no host with room in reach (answered by the fallback).
  int64_t placements_nowhere() const { return nowhere_.load(); }
  // Placements on a host outside the profile's region (the nearest with room).
  int64_t placements_nearby() const { return nearby_.load(); }

  // Allocations started and not yet finished (for tests and metrics).
  int inflight() const;
  // Refusals by the address pool, service, global and host-capacity limits.
  const ExhaustionLog& exhaustion() const { return exhaustion_; }

 private:
  void Allocate(const std::string& cpt, const std::string& service,
                const std::optional<Registration>& registration);
  absl::StatusOr<std::string> CreateVm(const std::string& cpt, const ServicePlacement& placement);
  absl::Status CheckLimits(const std::string& cpt, const ServicePlacement& placement) const;

  struct Host {
    HostSpec spec;
    std::map<std::string, HostPool> pools;  // by service
    std::atomic<int64_t> placed{0}, moved_away{0};
  };
  struct HostState {
    bool up = true;
    absl::Time down_since = absl::InfinitePast();
    // Domains left on the host while it was down (moved or released VMs):
    // name -> address, kept reserved until the host's reconcile destroys them.
    std::map<std::string, std::string> stale;
  };
  // The host whose pool for the VM's service holds its address; -1 if none.
  int HostOf(const registry::VmRecord& vm) const;
  const HostPool* PoolOf(size_t host, const std::string& service) const;
  VmSize SizeOf(const registry::VmRecord& vm) const;
  // Places, leases and records a new VM (provisioning). `exclude`: a host to
  // skip; `replaces`: the VM of a lost host it re-creates (VmRecord::replaces).
  struct Placed {
    registry::VmRecord record;
    size_t host;
  };
  absl::StatusOr<Placed> PlaceAndRecord(const std::string& cpt, const ServicePlacement& placement,
                                        int exclude = -1, const std::string& replaces = "");
  // Starts the recorded VM on its host and waits until it is ready.
  absl::Status Start(const Placed& placed, const ServicePlacement& placement);
  // One probe of every host (List), CheckHosts' and ProbeHosts' common loop:
  // a host that fails is marked down; one that is down and answers is passed
  // to `back`, and is up again when `back` returns true. `answered`, if set,
  // gets true for each host that answered.
  using HostBack = absl::FunctionRef<bool(size_t host, const std::vector<DomainInfo>& domains)>;
  HostCheckReport ProbeEach(HostBack back, std::vector<bool>* answered);
  // CheckHosts: the VMs of a host down for longer than the grace period are
  // re-created on other hosts.
  void MoveAway(size_t host, HostCheckReport& report);
  bool HostUp(size_t host) const;
  void MarkDown(size_t host, absl::string_view why);
  // Makes one reachable host match the registry (see Reconcile).
  // False when it did nothing: the leader's fence refused (a deposed leader).
  bool ReconcileHost(size_t host, const std::vector<DomainInfo>& domains,
                     const std::vector<registry::VmRecord>& vms, ReconcileReport& report);
  // A VM of a down host, re-created elsewhere; false when it has nowhere to go.
  bool Move(const registry::VmRecord& vm, size_t from);
  // A moved VM's old record goes; its domain and address are stale until the
  // host returns.
  void MovedAway(const registry::VmRecord& vm, size_t from);
  absl::StatusOr<std::string> ClaimSpare(const std::string& cpt, const ServicePlacement& placement);
  void RefillSparesAsLeader();
  void CreateSpare(const ServicePlacement& placement);
  DomainSpec SpecFor(const registry::VmRecord& vm, const ServicePlacement& placement,
                     const HostPool& pool) const;
  // Reconcile: a registry VM whose domain is gone (or stopped) is re-created.
  struct Restore {
    const registry::VmRecord* vm;
    const ServicePlacement* placement;
    size_t host;
    bool stopped;  // the domain exists but does not run
  };
  void RestoreAll(const std::vector<Restore>& missing, ReconcileReport& report);
  void MarkReady(const registry::VmRecord& vm);  // provisioning/booting -> ready

  std::vector<std::unique_ptr<Host>> hosts_;
  Placer placer_;
  HostOptions host_options_;
  registry::Registry& registry_;
  std::map<std::string, ServicePlacement> placements_;
  ThreadPool& workers_;
  const Clock& clock_;
  VmLimits limits_;
  ReadinessCheck readiness_;
  std::function<std::string()> name_suffix_;
  AllocationLock allocation_lock_;
  LeaderGate leader_gate_;
  std::atomic<int64_t> spares_claimed_{0}, vms_created_{0};
  std::atomic<int64_t> nowhere_{0}, nearby_{0};
  // Held from a placement decision until its VM is in the registry, so two
  // allocations never both count the same free room.
  absl::Mutex place_mu_;
  mutable absl::Mutex hosts_mu_;
  std::vector<HostState> host_state_ ABSL_GUARDED_BY(hosts_mu_);
  absl::Mutex check_mu_;  // one CheckHosts at a time
  std::atomic<int64_t> boot_time_us_{1000000};
  absl::flat_hash_set<std::string> grown_ ABSL_GUARDED_BY(mu_);  // VMs at their maximum size
  mutable ExhaustionLog exhaustion_;

  mutable absl::Mutex mu_;
  // "<cpt>/<service>" -> callers waiting for the allocation in flight.
  absl::flat_hash_map<std::string, std::vector<Done>> inflight_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> spares_pending_ ABSL_GUARDED_BY(mu_);  // by service
  absl::flat_hash_map<std::string, int> spare_target_ ABSL_GUARDED_BY(mu_);    // by service
  std::map<std::string, int64_t> arrivals_ ABSL_GUARDED_BY(mu_);               // by service
  PeriodicThread monitor_;  // stopped first, in ~VmManager
  TaskTracker tasks_;       // last member: destroyed first, it waits for this object's tasks
};

}  // namespace ppe::vm
