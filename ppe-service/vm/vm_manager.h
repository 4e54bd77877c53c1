#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/thread_pool.h"
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
};

// Turns "this (CPT, service) needs a VM" into a running, registered domain.
// Blocking hypervisor calls run on the worker pool; concurrent requests for the
// same (CPT, service) share one allocation (single-flight).
class VmManager {
 public:
  using Done = std::function<void(absl::StatusOr<std::string> ip)>;

  VmManager(Hypervisor& hypervisor, registry::Registry& registry,
            std::vector<ServicePlacement> placements, ThreadPool& workers, const Clock& clock,
            int64_t epoch);

  // Calls `done` once, from a worker thread, with the new VM's address or an error.
  void EnsureVm(const std::string& cpt, const std::string& service, Done done);

  // Allocations started and not yet finished (for tests and metrics).
  int inflight() const;

 private:
  void Allocate(const std::string& cpt, const std::string& service);
  absl::StatusOr<std::string> CreateVm(const std::string& cpt, const ServicePlacement& placement);

  Hypervisor& hypervisor_;
  registry::Registry& registry_;
  std::map<std::string, ServicePlacement> placements_;
  ThreadPool& workers_;
  const Clock& clock_;
  int64_t epoch_;

  mutable absl::Mutex mu_;
  // "<cpt>/<service>" -> callers waiting for the allocation in flight.
  absl::flat_hash_map<std::string, std::vector<Done>> inflight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::vm
