#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "ppe-service/replay/boot_latency.h"
#include "ppe-service/vm/hypervisor.h"

namespace ppe::replay {

// The hypervisor of the trace replay, behind the real interface: domains are
// created instantly (the replay's clock does not move during a call), and
// each draws its boot latency, in creation order, from a lognormal
// distribution. The replay reads BootSeconds to know when a VM would serve.
class SimulatedHypervisor final : public vm::Hypervisor {
 public:
  explicit SimulatedHypervisor(BootLatency boot) : boot_(std::move(boot)) {}

  vm::HypervisorCapabilities capabilities() const override { return {}; }
  absl::Status Create(const vm::DomainSpec& spec) override;
  absl::Status Destroy(absl::string_view name) override;
  absl::StatusOr<std::vector<vm::DomainInfo>> List() override;
  absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) override;

  // Seconds from creation until `name` serves; -1 for a domain never created.
  double BootSeconds(const std::string& name) const;
  int created() const;

 private:
  mutable absl::Mutex mu_;
  BootLatency boot_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, vm::VmTag> domains_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, double> boot_seconds_ ABSL_GUARDED_BY(mu_);
  int created_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ppe::replay
