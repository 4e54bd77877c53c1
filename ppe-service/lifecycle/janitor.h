#pragma once

#include "absl/time/time.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/periodic_thread.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/vm/vm_manager.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::lifecycle {

// The periodic housekeeping of the registry, off the lookup path:
//  - writes profiles' last_seen (kept in memory between flushes);
//  - expires profiles not seen for `idle_expiry`: they stop resolving and
//    their VMs drain for `drain` (longer than the DNS TTL they were handed out
//    with) before they are destroyed;
//  - destroys draining VMs whose time has come, freeing their addresses;
//  - removes invalidated profiles once they have no VM left.
class Janitor {
 public:
  struct Options {
    absl::Duration idle_expiry = absl::Hours(24);
    absl::Duration drain = absl::Seconds(60);
    absl::Duration interval = absl::Seconds(10);
  };
  // registry.idle_profile_expiry_s, drain_s and janitor_interval_s.
  static Options OptionsFromConfig(const ppe::config::v1::PpeConfig& config) {
    const auto& r = config.registry();
    return {.idle_expiry = absl::Seconds(r.idle_profile_expiry_s()),
            .drain = absl::Seconds(r.drain_s()),
            .interval = absl::Seconds(r.janitor_interval_s())};
  }
  struct Report {
    int flushed = 0, expired = 0, released = 0, removed = 0, errors = 0;
  };

  Janitor(registry::Registry& registry, vm::VmManager& vms, const Clock& clock, Options options)
      : registry_(registry), vms_(vms), clock_(clock), options_(options) {}
  ~Janitor() { Stop(); }

  Report Tick();  // one pass, now
  void Start();   // a pass every `interval` on its own thread
  void Stop() { loop_.Stop(); }

 private:
  registry::Registry& registry_;
  vm::VmManager& vms_;
  const Clock& clock_;
  Options options_;
  PeriodicThread loop_;
};

}  // namespace ppe::lifecycle
