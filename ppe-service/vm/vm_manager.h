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
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/task_tracker.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/cpt/attributes.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/vm/address_pool.h"
#include "ppe-service/vm/exhaustion_log.h"
#include "ppe-service/vm/hypervisor.h"

namespace ppe::vm {

struct WorkloadShape {
  std::string name{};  // "cpu-heavy"
  unsigned vcpus = 1, max_vcpus = 1;
  unsigned memory_mib = 256, max_memory_mib = 256;
  std::vector<std::string> command{};  // containers: argv, with {ip} and {port}
  unsigned cpu_shares = 0;
};

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

struct VmLimits {
  size_t max_vms_per_profile = 4;
  size_t max_vms_total = 1000;
  unsigned host_vcpus = 0;  // PPE's own capacity accounting; 0 = unlimited
  unsigned host_memory_mib = 0;
};

// Turns "this (CPT, service) needs a VM" into a running, registered domain,
// and keeps libvirt and the registry in step. Blocking hypervisor and store
// calls run on the worker pool; concurrent requests for the same (CPT,
// service) share one allocation (single-flight).
class VmManager {
 public:
  using Done = std::function<void(absl::StatusOr<std::string> ip)>;
  // Blocks until the started VM answers (booting -> ready) or returns why not.
  using ReadinessCheck =
      std::function<absl::Status(const registry::VmRecord& vm, const ServicePlacement& placement)>;

  VmManager(Hypervisor& hypervisor, registry::Registry& registry,
            std::vector<ServicePlacement> placements, ThreadPool& workers, const Clock& clock,
            VmLimits limits = {});

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
  // Starts creating spares up to each service's warm_spares (non-blocking).
  void RefillSpares();
  void set_readiness_check(ReadinessCheck check) { readiness_ = std::move(check); }
  // Single flight across processes (replicas sharing an etcd registry): an
  // allocation for (cpt, service) first takes the lock named "<service>/<cpt>"
  // through this (blocking; returns the release), then looks again whether a
  // VM is ready (another replica's allocation) before creating one. Set once,
  // before serving.
  using AllocationLock =
      std::function<absl::StatusOr<std::function<void()>>(const std::string& name)>;
  void set_allocation_lock(AllocationLock lock) { allocation_lock_ = std::move(lock); }

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

  // Allocations started and not yet finished (for tests and metrics).
  int inflight() const;
  // Refusals by the address pool, service, global and host-capacity limits.
  const ExhaustionLog& exhaustion() const { return exhaustion_; }

 private:
  void Allocate(const std::string& cpt, const std::string& service,
                const std::optional<Registration>& registration);
  absl::StatusOr<std::string> CreateVm(const std::string& cpt, const ServicePlacement& placement);
  absl::Status CheckLimits(const std::string& cpt, const ServicePlacement& placement) const;
  absl::StatusOr<std::string> ClaimSpare(const std::string& cpt, const ServicePlacement& placement);
  void CreateSpare(const ServicePlacement& placement);
  DomainSpec SpecFor(const registry::VmRecord& vm, const ServicePlacement& placement) const;
  // Reconcile: a registry VM whose domain is gone (or stopped) is re-created.
  struct Restore {
    const registry::VmRecord* vm;
    const ServicePlacement* placement;
    bool stopped;  // the domain exists but does not run
  };
  void RestoreAll(const std::vector<Restore>& missing, ReconcileReport& report);
  void MarkReady(const registry::VmRecord& vm);  // provisioning/booting -> ready

  Hypervisor& hypervisor_;
  registry::Registry& registry_;
  std::map<std::string, ServicePlacement> placements_;
  ThreadPool& workers_;
  const Clock& clock_;
  VmLimits limits_;
  ReadinessCheck readiness_;
  AllocationLock allocation_lock_;
  std::atomic<int64_t> spares_claimed_{0}, vms_created_{0};
  std::atomic<int64_t> boot_time_us_{1000000};
  absl::flat_hash_set<std::string> grown_ ABSL_GUARDED_BY(mu_);  // VMs at their maximum size
  mutable ExhaustionLog exhaustion_;
  TaskTracker tasks_;  // last member: destroyed first, it waits for this object's tasks

  mutable absl::Mutex mu_;
  // "<cpt>/<service>" -> callers waiting for the allocation in flight.
  absl::flat_hash_map<std::string, std::vector<Done>> inflight_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> spares_pending_ ABSL_GUARDED_BY(mu_);  // by service
};

}  // namespace ppe::vm
