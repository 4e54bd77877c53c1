#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/periodic_thread.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/vm/hypervisor.h"
#include "ppe-service/vm/usage_signal.h"
#include "ppe-service/vm/vm_manager.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::vm {

// Polls the hypervisor's usage counters (Hypervisor::Stats: CPU time, memory,
// NIC bytes) of every ready VM on its own thread, off the lookup path, and
// turns two samples into a CPU percentage (of the VM's vCPUs) and a network
// rate. Each ready VM is then in one state:
//  - "unmeasured": no CPU figure yet (its first poll, or a driver such as
//    test:/// that reports none). Never idle, never busy.
//  - "idle": CPU below idle_cpu_percent at every poll for idle_period, and
//    NIC bytes over that time within idle_network_bytes_per_s x idle_period
//    (an average: a few ARP broadcasts on a shared bridge are not a client);
//  - "busy": CPU at or above busy_cpu_percent at every poll for busy_period
//    (the clock restarts when its pool gains a VM: one more VM per period);
//  - "active": measured, neither.
// In kAct mode an idle VM of a profile (never a warm spare) is drained through
// VmManager::DrainVm, as the scaler's scale-downs are, and the janitor
// releases it after `drain`: DNS caches may hide its clients from the
// demand counts, the hypervisor does not. The pool keeps at least its
// min_vms, and a pool with a busy VM keeps its idle ones (the capacity its
// clients move to as their cached answers expire). Busy VMs are a scale-up signal the scaler reads
// through UsageSignal. kObserve only measures (metrics).
class UsageMonitor final : public UsageSignal {
 public:
  enum class Mode { kAct, kObserve };
  struct Options {
    Mode mode = Mode::kAct;
    absl::Duration poll_interval = absl::Seconds(10);
    double idle_cpu_percent = 2;
    // Averaged over idle_period. Measured on an LXC bridge while neighbours
    // boot and serve (tests/usage/usage_lxc_test.py, debug log): a 70-byte
    // frame every ~3 s, ~23 B/s, that is no client. 50 B/s over 10 minutes is
    // 30 kB: a few dozen small HTTP requests.
    double idle_network_bytes_per_s = 50;
    absl::Duration idle_period = absl::Minutes(10);
    double busy_cpu_percent = 80;
    absl::Duration busy_period = absl::Minutes(1);
    absl::Duration drain = absl::Seconds(60);
  };
  // The `usage` section (and registry.drain_s); nullopt for mode OFF, where
  // no monitor runs.
  static std::optional<Options> OptionsFromConfig(const ppe::config::v1::PpeConfig& config);
  // The VMs a pool keeps whatever its usage (the scaler's min_vms).
  using MinVms = std::function<int(const std::string& cpt, const std::string& service)>;

  // Every host's hypervisor is polled; a host whose poll fails is counted as
  // an error and skipped for that round.
  UsageMonitor(std::vector<Hypervisor*> hypervisors, registry::Registry& registry, VmManager& vms,
               const Clock& clock, Options options);
  UsageMonitor(Hypervisor& hypervisor, registry::Registry& registry, VmManager& vms,
               const Clock& clock, Options options)
      : UsageMonitor(std::vector<Hypervisor*>{&hypervisor}, registry, vms, clock,
                     std::move(options)) {}
  ~UsageMonitor() override { Stop(); }

  // Before Start. Default: 0 for every pool.
  void set_min_vms(MinVms min_vms) { min_vms_ = std::move(min_vms); }
  // Before Start. Replicas: every replica polls (metrics), only the one the
  // gate lets act drains idle VMs, inside its fence (VmManager::LeaderGate).
  void set_leader_gate(VmManager::LeaderGate gate) { leader_gate_ = std::move(gate); }

  struct Report {
    int measured = 0, unmeasured = 0, idle = 0, busy = 0, drained = 0, errors = 0;
  };
  // One poll, now (the thread calls it every poll_interval; tests call it
  // with a manual clock). Blocking: calls the hypervisor and the registry.
  absl::StatusOr<Report> Poll() ABSL_LOCKS_EXCLUDED(poll_mu_, mu_);
  void Start();
  void Stop() { loop_.Stop(); }

  PoolUsage Pool(const std::string& cpt, const std::string& service) const override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Totals by service, for metrics (bounded: services x states, no profiles).
  struct ServiceUsage {
    double cpu_seconds = 0;             // counter: CPU its ready VMs used while polled
    double rx_bytes = 0, tx_bytes = 0;  // counters, as the VMs see them
    double memory_bytes = 0;            // gauge: memory in use now
    int unmeasured = 0, idle = 0, busy = 0, active = 0;  // gauges: ready VMs by state
    int64_t idle_releases = 0;                           // counter: VMs drained for being idle
  };
  std::map<std::string, ServiceUsage> ByService() const ABSL_LOCKS_EXCLUDED(mu_);
  struct PollStats {
    int64_t polls = 0, errors = 0;
    absl::Duration last_duration;
  };
  PollStats poll_stats() const ABSL_LOCKS_EXCLUDED(mu_);
  const Options& options() const { return options_; }

 private:
  enum class State { kUnmeasured, kIdle, kBusy, kActive };
  struct Tracked {
    std::string cpt, service;
    absl::Time at = absl::InfinitePast();  // of the last sample
    DomainStats last;
    absl::Time quiet_since = absl::InfiniteFuture();  // below the idle thresholds since
    double quiet_bytes = 0;                           // NIC bytes since quiet_since
    absl::Time hot_since = absl::InfiniteFuture();    // above the busy threshold since
    State state = State::kUnmeasured;
  };
  using PoolKey = std::pair<std::string, std::string>;  // (cpt, service)

  std::vector<Hypervisor*> hypervisors_;
  registry::Registry& registry_;
  VmManager& vms_;
  const Clock& clock_;
  const Options options_;
  MinVms min_vms_;
  VmManager::LeaderGate leader_gate_;

  absl::Mutex poll_mu_;  // one Poll at a time
  mutable absl::Mutex mu_;
  std::map<std::string, Tracked> tracked_ ABSL_GUARDED_BY(mu_);  // by VM name
  std::map<PoolKey, PoolUsage> pools_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ServiceUsage> services_ ABSL_GUARDED_BY(mu_);
  PollStats poll_stats_ ABSL_GUARDED_BY(mu_);
  PeriodicThread loop_;
};

}  // namespace ppe::vm
