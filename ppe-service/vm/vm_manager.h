#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/cpt/attributes.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/vm/address_pool.h"
#include "ppe-service/vm/hypervisor.h"

namespace ppe::vm {

struct WorkloadShape {
  std::string name;  // "cpu-heavy"
  unsigned vcpus = 1, max_vcpus = 1;
  unsigned memory_mib = 256, max_memory_mib = 256;
};

struct ServicePlacement {
  std::string service;
  WorkloadShape shape;
  std::string network;  // may be empty
  std::shared_ptr<AddressPool> addresses;
  size_t max_vms = 0;  // 0: the address pool's capacity
};

struct VmLimits {
  size_t max_vms_per_profile = 4;
  size_t max_vms_total = 1000;
};

// Turns "this (CPT, service) needs a VM" into a running, registered domain,
// and keeps libvirt and the registry in step. Blocking hypervisor and store
// calls run on the worker pool; concurrent requests for the same (CPT,
// service) share one allocation (single-flight).
class VmManager {
 public:
  using Done = std::function<void(absl::StatusOr<std::string> ip)>;

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

  // Destroys the domain (if it exists) and removes the VM, freeing its lease.
  absl::Status ReleaseVm(const std::string& name);

  // Start-up: makes libvirt match the registry. Registry VMs whose domain runs
  // are adopted; those whose domain is gone (or stopped) are re-created with
  // the same name, address and MAC; failed ones are released;
  // domains tagged by this registry that it does not know are destroyed.
  struct ReconcileReport {
    int adopted = 0, restored = 0, released = 0, orphans_destroyed = 0, failed = 0;
  };
  absl::StatusOr<ReconcileReport> Reconcile();

  // Allocations started and not yet finished (for tests and metrics).
  int inflight() const;

 private:
  void Allocate(const std::string& cpt, const std::string& service,
                const std::optional<Registration>& registration);
  absl::StatusOr<std::string> CreateVm(const std::string& cpt, const ServicePlacement& placement);
  absl::Status CheckLimits(const std::string& cpt, const ServicePlacement& placement) const;
  DomainSpec SpecFor(const registry::VmRecord& vm, const ServicePlacement& placement) const;

  Hypervisor& hypervisor_;
  registry::Registry& registry_;
  std::map<std::string, ServicePlacement> placements_;
  ThreadPool& workers_;
  const Clock& clock_;
  VmLimits limits_;

  mutable absl::Mutex mu_;
  // "<cpt>/<service>" -> callers waiting for the allocation in flight.
  absl::flat_hash_map<std::string, std::vector<Done>> inflight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::vm
