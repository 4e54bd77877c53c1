#pragma once

#include <string>

#include "absl/time/time.h"

namespace ppe::vm {

// How busy one (profile, service) pool's VMs are, measured by the hypervisor.
struct PoolUsage {
  int measured = 0;  // ready VMs with a CPU figure from the last two polls
  int idle = 0;      // of those: idle for the idle period
  int busy = 0;      // of those: busy for the busy period
  // When the usage monitor last drained one of its VMs for being idle.
  absl::Time idle_released = absl::InfinitePast();
};

// The hypervisor's view of VM usage, as the scaler reads it (UsageMonitor is
// the implementation; scaler tests give their own).
class UsageSignal {
 public:
  virtual ~UsageSignal() = default;
  // Cheap (memory only): callable under the caller's lock.
  virtual PoolUsage Pool(const std::string& cpt, const std::string& service) const = 0;
};

}  // namespace ppe::vm
