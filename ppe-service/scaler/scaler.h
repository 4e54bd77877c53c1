#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/periodic_thread.h"
#include "ppe-service/common/task_tracker.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/forecast/demand_history.h"
#include "ppe-service/forecast/model.h"
#include "ppe-service/forecast/stl.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/scaler/demand_tracker.h"
#include "ppe-service/store/registry_store.h"
#include "ppe-service/vm/usage_signal.h"
#include "ppe-service/vm/vm_manager.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::scaler {

// Sizes every (profile, service) pool ahead of its demand. Once per bucket:
// the bucket's request counts go into each series' history and model (an
// O(1) update; refits on a schedule), the model forecasts the next
// `lead time` (the measured boot time plus a buffer, in buckets), and the
// pool is sized to the upper prediction bound divided by what one VM serves,
// within the profile's min/max and a global budget granted by service tier
// (premium first). Scale-ups act at once. Scale-down is stabilised as the
// Kubernetes HPA does it: the pool keeps the highest want of the last
// `cooldown` buckets, and the VMs above it drain at once.
// Everything runs on the scaler's thread and the worker pool, never on the
// lookup path.
//
// With a usage signal (the hypervisor's measurements, vm::UsageMonitor): a
// pool with busy VMs wants one VM more than it has measured, whatever the
// forecast says; and a pool the monitor drained for idleness wants nothing
// from its forecast or the keep-warm floor (only its min_vms) until DNS demand
// is counted again after that release.
//
// With a store, the operator's limits are written before SetLimits returns,
// and the request counts are checkpointed every `checkpoint_every` buckets
// (default: every bucket): each series that counted requests since the last
// checkpoint rewrites its chunk (the current hour, one key per series and
// hour; idle series write nothing), off the lock, in transactions of at most
// `txn_ops` ops; the hour that fell out of the kept week is deleted once an
// hour. Ticks run inside a leader's fence (Registry::FenceScope, replicas)
// carry it to their scale-ups on the worker pool and to the checkpoints: etcd
// refuses them once another replica leads. A crash (or a leader's kill -9)
// loses the buckets since the last checkpoint, with the default only the
// bucket being counted (and the one being written, if the write was cut);
// the time the PPE was down reads as zero requests. A checkpoint the store
// refuses is counted and logged; the series' chunk is written again at its
// next counted bucket.
class Scaler {
 public:
  enum class Mode { kPredictive, kReactive, kOff };
  struct Options {
    Mode mode = Mode::kPredictive;
    absl::Duration bucket = absl::Minutes(1);
    absl::Duration lead_buffer = absl::Seconds(30);
    double level = 95;
    int refit_every = 60;
    int cooldown = 15;  // scale-down stabilisation window, buckets (docs/evaluation.md)
    std::vector<int> periods{};
    int history_buckets = 10080;
    int checkpoint_every = 1;  // buckets between demand checkpoints to the store
    // Ops per checkpoint transaction: etcd refuses more than 128 (its
    // --max-txn-ops), the fence adds compares; SQLite takes larger ones.
    int txn_ops = 4000;
    int keep_warm = 10;
    int min_vms = 0;
    int max_vms = 4;
    int budget = 1000;  // VMs across all profiles
    absl::Duration drain = absl::Seconds(60);
    std::map<std::string, double> requests_per_vm{};  // by service (per bucket)
    // Adaptive warm spares: each service's arrivals (allocations for profiles
    // with no ready VM, VmManager::TakeArrivals) are a series of their own,
    // forecast like a profile's demand; the service keeps as many ready spares
    // as the upper bound of the arrivals forecast over the lead time (one
    // spare per arrival), at least its configured warm_spares. Scale-down is
    // stabilised: the target is the highest of the last `cooldown` buckets'
    // wants, and the spares above it drain at once.
    bool adaptive_spares = false;
    // Pooling: a sparse series (under two cycles of history, or mostly zeros)
    // is provisioned for at least its level times its service's seasonal
    // shape (MSTL of the service's total demand; forecast/stl.h), so a new or
    // small profile is ready for its service's daily peak.
    bool pool_sparse = false;
  };
  // The `scaler` section, limits.max_vms_per_profile and max_vms_total,
  // registry.drain_s and each service's requests_per_vm.
  static Options OptionsFromConfig(const ppe::config::v1::PpeConfig& config);

  // `store` (may be null: nothing kept across restarts) holds the limits and
  // demand checkpoints, next to the registry's keys.
  Scaler(registry::Registry& registry, vm::VmManager& vms, DemandTracker& demand,
         ThreadPool& workers, const Clock& clock, Options options,
         store::RegistryStore* store = nullptr);
  ~Scaler() { loop_.Stop(); }

  // Before Start; may be null (no usage signal). Must outlive the scaler's use.
  void set_usage_signal(const vm::UsageSignal* usage) { usage_ = usage; }
  // The VMs a (profile, service) pool keeps at least: its own min or min_vms.
  int MinVms(const std::string& cpt, const std::string& service) const ABSL_LOCKS_EXCLUDED(mu_);

  // Start-up, after the registry's Load and before Start: brings back the
  // limits and demand history of active profiles, and deletes the keys of
  // profiles no longer active and counts older than the history keeps.
  // Replicas call it again when elected (inside the leader's fence, which
  // its deletions then carry): the checkpoints replace every series' history,
  // so the new leader forecasts from the previous leader's.
  absl::Status Load();

  // One bucket: fold the counts in, forecast, act. Called by the thread every
  // `bucket`; tests call it with a simulated clock.
  void Tick();
  void Start();
  // Stops the loop, then checkpoints the buckets since the last checkpoint.
  void Stop();

  // Admin.
  absl::Status SetLimits(const std::string& cpt, const std::string& service, int min_vms,
                         int max_vms);
  struct View {
    std::string cpt, service, model;
    std::vector<double> history;             // most recent buckets, oldest first
    std::vector<double> mean, lower, upper;  // over the lead time
    int lead_buckets = 0;
    int desired = 0, current = 0, min_vms = 0, max_vms = 0;
    int pending = 0;            // scale-ups ordered whose AddVm has not returned yet
    double mean_abs_error = 0;  // one-bucket-ahead forecasts vs what came
    int64_t errors_counted = 0;
  };
  absl::StatusOr<View> Describe(const std::string& cpt, const std::string& service);
  // Decides and acts for one series now, outside the bucket schedule.
  absl::StatusOr<View> ScaleNow(const std::string& cpt, const std::string& service);

  struct Stats {
    int64_t scale_ups = 0, scale_downs = 0, scale_outs = 0, series = 0, refits = 0;
    // Ticks in which busy VMs raised a pool's target above its forecast.
    int64_t busy_signals = 0;
    int64_t checkpoint_errors = 0;  // demand checkpoints the store refused
    // Written by the demand checkpoints: transactions, puts (one per series
    // that had requests), and the bytes of their keys and values.
    int64_t checkpoint_txns = 0, checkpoint_puts = 0, checkpoint_bytes = 0;
    // VMs the forecasts wanted that the global budget did not grant.
    int64_t budget_denied_last = 0, budget_denied_total = 0;
    int budget = 0;
    double mean_abs_error = 0;  // over all series' one-bucket-ahead forecasts
    int64_t spare_target = 0;   // adaptive warm spares wanted, over all services
    int64_t spares_drained = 0;
  };
  Stats stats() const;
  int lead_buckets() const;

 private:
  struct Series {
    std::string cpt, service;  // cpt empty: the service's first-time arrivals (PlanSpares)
    forecast::DemandHistory history;
    std::unique_ptr<forecast::Model> model;
    int64_t fitted_at = -1;
    int64_t last_active = -1;  // last bucket with requests
    bool dirty = false;        // requests counted since its last checkpoint
    double next_mean = -1;     // the model's forecast of the bucket now being counted
    double abs_error_sum = 0;
    int64_t errors = 0;
    int min_override = -1, max_override = -1;
    int pending = 0;  // scale-ups scheduled, not finished
    int desired = 0;
    std::vector<double> mean, lower, upper;
    std::deque<int> recent_desired;  // the last `cooldown` buckets' wants (scale-down)
  };

  Series& SeriesFor(const std::string& cpt, const std::string& service)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tick's work under the lock; the store writes it asks for go into `ops`.
  void TickLocked(std::vector<store::Op>& ops) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Observe(Series& s, int64_t bucket, double count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forecast(Series& s, int64_t bucket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // VMs the forecast asks for, before and after the profile's min/max.
  int Need(const Series& s, int64_t bucket, int* uncapped = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Act(Series& s, int desired, int uncapped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adaptive warm spares: observes each service's arrivals of the bucket that
  // ended, forecasts them and sets the VmManager's spare target.
  void PlanSpares(int64_t ended) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The profile's VMs of the series' service that serve or will: ready, and
  // starting (provisioning or booting).
  struct PoolCount {
    int ready = 0;
    int starting = 0;
  };
  PoolCount CountVms(const Series& s) const;
  View ViewOf(const Series& s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the counts of the chunk holding `last` (up to `last`) of each series
  // with requests since the last checkpoint; at the chunk's end also deletes
  // each series' chunk that fell out of the retained history.
  void CheckpointOps(int64_t last, std::vector<store::Op>& ops) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies `ops` in transactions of a bounded size, each through `fence`
  // when set; failures (and refusals by the fence) are logged and counted.
  void Write(const std::vector<store::Op>& ops,
             const std::shared_ptr<const registry::Registry::Fence>& fence)
      ABSL_LOCKS_EXCLUDED(mu_);
  int64_t BucketOf(absl::Time t) const;

  registry::Registry& registry_;
  vm::VmManager& vms_;
  DemandTracker& demand_;
  ThreadPool& workers_;
  const Clock& clock_;
  Options options_;
  // The clock's hour and day in buckets, where longer than the scale-down
  // window: extra seasonal sparse periods for a service's arrivals (Forecast).
  std::vector<int> arrival_clock_periods_;
  store::RegistryStore* store_;
  const vm::UsageSignal* usage_ = nullptr;

  absl::Mutex limits_mu_;  // SetLimits: store, then memory, one at a time
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, Series> series_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Series> arrivals_ ABSL_GUARDED_BY(mu_);  // by service (adaptive spares)
  // A service's total demand and its seasonal shape, for pooling.
  struct ServiceDemand {
    forecast::DemandHistory history;
    std::optional<forecast::SeasonalShape> shape;
    int64_t fitted_at = -1;
  };
  // Raises a sparse series' forecast to its level times its service's shape.
  void Pool(Series& s, int64_t bucket) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::map<std::string, ServiceDemand> services_ ABSL_GUARDED_BY(mu_);
  int64_t last_bucket_ ABSL_GUARDED_BY(mu_) = -1;
  // The fence of the last Tick (a replica's leader loop): Stop's checkpoint
  // goes through it too, so a deposed leader's final write is refused.
  std::shared_ptr<const registry::Registry::Fence> fence_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  PeriodicThread loop_;
  TaskTracker tasks_;  // last member: destroyed first, it waits for this object's tasks
};

}  // namespace ppe::scaler
