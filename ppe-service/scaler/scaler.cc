#include "ppe-service/scaler/scaler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/forecast/forecaster.h"
#include "ppe-service/forecast/intermittent.h"
#include "ppe/registry/v1/records.pb.h"

namespace ppe::scaler {
namespace {

int TierRank(const std::string& tier) {
  if (tier == "premium") return 0;
  if (tier == "standard") return 1;
  return 2;
}

bool Counts(registry::VmState s) {
  return s == registry::VmState::kProvisioning || s == registry::VmState::kBooting ||
         s == registry::VmState::kReady;
}

// Each series' history rolls fine buckets up into hours of this many and
// keeps a week of them; demand checkpoints are chunks of the same span.
constexpr int kRollup = 60;
constexpr int kRollupKept = 24 * 7;

constexpr char kLimitsPrefix[] = "/ppe/scaling/limits/";
constexpr char kDemandPrefix[] = "/ppe/scaling/demand/";

std::string LimitsKey(const std::string& cpt, const std::string& service) {
  return absl::StrCat(kLimitsPrefix, cpt, "/", service);
}
std::string DemandPrefix(const std::string& cpt, const std::string& service) {
  return absl::StrCat(kDemandPrefix, cpt, "/", service, "/");
}
std::string ChunkKey(const std::string& cpt, const std::string& service, int64_t first) {
  return absl::StrCat(DemandPrefix(cpt, service), absl::StrFormat("%019d", first));
}

int64_t ChunkStart(int64_t bucket) { return bucket - ((bucket % kRollup) + kRollup) % kRollup; }

// "<prefix><cpt>/<service>" (limits) or "<prefix><cpt>/<service>/<bucket>"
// (demand) -> cpt and service; false when malformed. A CPT has no '/'.
bool SplitKey(absl::string_view key, absl::string_view prefix, bool chunk, std::string* cpt,
              std::string* service) {
  absl::string_view rest = key.substr(prefix.size());
  if (chunk) {
    size_t last = rest.rfind('/');
    if (last == absl::string_view::npos) return false;
    rest = rest.substr(0, last);
  }
  size_t slash = rest.find('/');
  if (slash == absl::string_view::npos || slash == 0 || slash + 1 == rest.size()) return false;
  *cpt = std::string(rest.substr(0, slash));
  *service = std::string(rest.substr(slash + 1));
  return true;
}

}  // namespace

Scaler::Options Scaler::OptionsFromConfig(const ppe::config::v1::PpeConfig& config) {
  using ppe::config::v1::Scaler;
  const Scaler& sc = config.scaler();
  Options o{.mode = sc.mode() == Scaler::OFF        ? Mode::kOff
                    : sc.mode() == Scaler::REACTIVE ? Mode::kReactive
                                                    : Mode::kPredictive,
            .bucket = absl::Milliseconds(sc.bucket_ms()),
            .lead_buffer = absl::Milliseconds(sc.lead_buffer_ms()),
            .level = sc.level(),
            .refit_every = static_cast<int>(sc.refit_every_buckets()),
            .cooldown = static_cast<int>(sc.cooldown_buckets()),
            .periods = {sc.seasonal_periods().begin(), sc.seasonal_periods().end()},
            .history_buckets = static_cast<int>(sc.history_buckets()),
            .checkpoint_every = static_cast<int>(sc.checkpoint_every_buckets()),
            // etcd: at most 128 ops, less the fence's compares.
            .txn_ops = config.registry().store() == ppe::config::v1::Registry::ETCD ? 100 : 4000,
            .keep_warm = static_cast<int>(sc.keep_warm_buckets()),
            .min_vms = static_cast<int>(sc.min_vms_per_profile()),
            .max_vms = static_cast<int>(config.limits().max_vms_per_profile()),
            .budget = static_cast<int>(config.limits().max_vms_total()),
            .drain = absl::Seconds(config.registry().drain_s()),
            .adaptive_spares = sc.adaptive_spares(),
            .pool_sparse = sc.pool_sparse()};
  for (const auto& zone : config.zones()) {
    for (const auto& svc : zone.services()) o.requests_per_vm[svc.name()] = svc.requests_per_vm();
  }
  return o;
}

Scaler::Scaler(registry::Registry& registry, vm::VmManager& vms, DemandTracker& demand,
               ThreadPool& workers, const Clock& clock, Options options,
               store::RegistryStore* store)
    : registry_(registry),
      vms_(vms),
      demand_(demand),
      workers_(workers),
      clock_(clock),
      options_(std::move(options)),
      store_(store) {
  options_.checkpoint_every = std::max(1, options_.checkpoint_every);
  // A service's arrivals, when sparse, may also follow the clock's hour and
  // day, configured or not: the access log's burst at :05 every hour. Only
  // cycles longer than the scale-down window, which already holds a want
  // across a shorter one; and not for single profiles, whose few requests
  // match a clock phase by chance as often as by habit.
  for (absl::Duration cycle : {absl::Hours(1), absl::Hours(24)}) {
    const int64_t p = absl::IDivDuration(cycle, options_.bucket, &cycle);
    if (p > options_.cooldown && cycle == absl::ZeroDuration()) {
      arrival_clock_periods_.push_back(static_cast<int>(p));
    }
  }
}

int64_t Scaler::BucketOf(absl::Time t) const {
  return absl::ToUnixMillis(t) / absl::ToInt64Milliseconds(options_.bucket);
}

// What this tick decides is all the pool gets until the VMs the next tick asks
// for are ready, one bucket and a boot time from now: the forecast covers the
// buckets that span overlaps (the boot time padded by the buffer).
int Scaler::lead_buckets() const {
  absl::Duration lead = vms_.typical_boot_time() + options_.lead_buffer;
  // FDivDuration: Duration / Duration is integer division, which rounded a
  // 57 s lead on 60 s buckets down to none.
  return 1 +
         std::max<int>(0, static_cast<int>(std::ceil(absl::FDivDuration(lead, options_.bucket))));
}

Scaler::Series& Scaler::SeriesFor(const std::string& cpt, const std::string& service) {
  auto [it, created] = series_.try_emplace({cpt, service});
  if (created) {
    it->second.cpt = cpt;
    it->second.service = service;
    it->second.history = forecast::DemandHistory({.capacity = options_.history_buckets,
                                                  .rollup_factor = kRollup,
                                                  .rollup_capacity = kRollupKept});
  }
  return it->second;
}

void Scaler::Observe(Series& s, int64_t bucket, double count) {
  s.history.Add(bucket, count).IgnoreError();
  if (options_.pool_sparse) {
    auto [service, created] = services_.try_emplace(s.service);
    if (created)
      service->second.history =
          forecast::DemandHistory({.capacity = options_.history_buckets, .rollup_capacity = 1});
    service->second.history.Add(bucket, count).IgnoreError();  // sums the service's series
  }
  if (count > 0) {
    s.last_active = bucket;
    s.dirty = true;
  }
  if (s.next_mean >= 0) {
    s.abs_error_sum += std::abs(s.next_mean - count);
    ++s.errors;
  }
  if (s.model) s.model->Update(count);
}

void Scaler::Forecast(Series& s, int64_t bucket) {
  int lead = lead_buckets();
  s.mean.clear();
  s.lower.clear();
  s.upper.clear();
  s.next_mean = -1;
  if (options_.mode != Mode::kPredictive || s.history.empty()) return;
  if (!s.model || bucket - s.fitted_at >= options_.refit_every) {
    std::vector<double> y = s.history.Values();
    forecast::FitOptions fit;
    for (int p : options_.periods) {
      if (static_cast<int>(y.size()) >= 2 * p) fit.periods.push_back(p);
    }
    if (s.cpt.empty()) fit.sparse_periods = arrival_clock_periods_;  // a service's arrivals
    fit.include_arima = false;  // ETS and decomposition: tens of ms, not seconds
    // Without ARIMA the candidates are few: a seasonal naive forecast per
    // period (M4 hourly OWA 0.447 against 0.518 with the longest only).
    fit.snaive = forecast::SeasonalNaiveCandidates::kEveryPeriod;
    absl::StatusOr<std::unique_ptr<forecast::Model>> model = forecast::Fit(y, fit);
    if (model.ok()) {
      s.model = std::move(*model);
      s.fitted_at = bucket;
      ++stats_.refits;
    }
  }
  if (!s.model) return;
  absl::StatusOr<forecast::Forecast> f = s.model->Predict(lead, options_.level);
  if (!f.ok()) return;
  s.mean = f->mean;
  s.lower = f->lower;
  s.upper = f->upper;
  s.next_mean = std::max(0.0, f->mean.front());
  Pool(s, bucket);
}

void Scaler::Pool(Series& s, int64_t bucket) {
  if (!options_.pool_sparse || options_.periods.empty() || s.mean.empty()) return;
  auto it = services_.find(s.service);
  if (it == services_.end()) return;
  ServiceDemand& d = it->second;
  if (d.fitted_at < 0 || bucket - d.fitted_at >= options_.refit_every) {
    d.fitted_at = bucket;
    d.shape.reset();
    std::vector<double> y = d.history.Values();
    std::vector<int> periods;
    for (int p : options_.periods) {
      if (static_cast<int>(y.size()) > 2 * p) periods.push_back(p);
    }
    if (!periods.empty()) {
      auto shape = forecast::SeasonalShapeOf(
          y, periods, d.history.last_bucket() + 1 - static_cast<int64_t>(y.size()));
      if (shape.ok()) d.shape = std::move(*shape);
    }
  }
  if (!d.shape) return;
  // The level comes from the newest cycle of the longest period: O(period).
  const int smallest = *std::min_element(options_.periods.begin(), options_.periods.end());
  const int longest = *std::max_element(options_.periods.begin(), options_.periods.end());
  std::vector<double> y = s.history.Tail(longest);
  if (s.history.size() >= 2 * smallest && !forecast::IsIntermittent(y)) return;  // not sparse
  // Only a profile that has come back: one seen in a single bucket is most
  // likely a one-off visit (most of a real access log's profiles), and its
  // level estimated from that one bucket would hold a VM for it for hours.
  if (std::count_if(y.begin(), y.end(), [](double v) { return v > 0; }) < 2) return;
  auto f = forecast::PooledForecast(y, s.history.last_bucket() + 1 - static_cast<int64_t>(y.size()),
                                    *d.shape, static_cast<int>(s.mean.size()), options_.level);
  if (!f.ok()) return;
  for (size_t h = 0; h < s.mean.size(); ++h) {
    s.mean[h] = std::max(s.mean[h], f->mean[h]);
    s.upper[h] = std::max(s.upper[h], f->upper[h]);
  }
}

int Scaler::Need(const Series& s, int64_t bucket, int* uncapped) {
  double per_vm = 600;
  if (auto it = options_.requests_per_vm.find(s.service); it != options_.requests_per_vm.end()) {
    per_vm = it->second;
  }
  std::vector<double> recent = s.history.Tail(1);
  double last = recent.empty() ? 0 : recent.back();
  double peak = last;  // reactive: what the last bucket needed
  if (options_.mode == Mode::kPredictive) {
    for (double u : s.upper) peak = std::max(peak, u);
  }
  int need = static_cast<int>(std::ceil(std::max(0.0, peak) / per_vm - 1e-9));
  vm::PoolUsage usage = usage_ != nullptr ? usage_->Pool(s.cpt, s.service) : vm::PoolUsage{};
  // Drained for idleness after the last bucket that counted requests: the
  // hypervisor's measurement outranks the forecast until demand comes back.
  const absl::Time active_until =
      absl::FromUnixMillis((s.last_active + 1) * absl::ToInt64Milliseconds(options_.bucket));
  const bool idle_released = usage.idle_released != absl::InfinitePast() &&
                             (s.last_active < 0 || usage.idle_released >= active_until);
  if (idle_released) need = 0;
  if (usage.busy > 0 && usage.measured + 1 > need) {
    need = usage.measured + 1;
    ++stats_.busy_signals;
  }
  if (uncapped != nullptr) *uncapped = need;
  int floor = s.min_override >= 0 ? s.min_override : options_.min_vms;
  if (!idle_released && s.last_active >= 0 && bucket - s.last_active < options_.keep_warm) {
    floor = std::max(floor, 1);
  }
  int ceiling = s.max_override >= 0 ? s.max_override : options_.max_vms;
  return std::clamp(need, floor, std::max(floor, ceiling));
}

Scaler::PoolCount Scaler::CountVms(const Series& s) const {
  PoolCount n;
  for (const registry::VmRecord& vm : registry_.ListVms(s.cpt)) {
    if (vm.service != s.service || !Counts(vm.state)) continue;
    ++(vm.state == registry::VmState::kReady ? n.ready : n.starting);
  }
  return n;
}

void Scaler::Act(Series& s, int desired, int uncapped) {
  s.desired = desired;
  const PoolCount count = CountVms(s);
  const int current = count.ready + count.starting;
  // A scale-up's VM starts (provisioning, booting) while its task is still
  // pending: counted once, as the larger of the two, not as their sum.
  const int planned = count.ready + std::max(count.starting, s.pending);
  // At the cap with more demand than the pool can take: grow the VMs instead.
  if (uncapped > desired && current >= desired && desired > 0) {
    tasks_.Schedule(workers_,
                    registry::Registry::FenceScope::Bind([this, cpt = s.cpt, service = s.service] {
                      absl::StatusOr<int> grown = vms_.ScaleOut(cpt, service);
                      if (grown.ok() && *grown > 0) {
                        absl::MutexLock lock(&mu_);
                        stats_.scale_outs += *grown;
                      }
                    }));
  }
  // Scale-down is stabilised as the HPA does it: the target is the highest
  // want of the last `cooldown` buckets, and the VMs above it drain at once.
  s.recent_desired.push_back(desired);
  while (static_cast<int>(s.recent_desired.size()) > options_.cooldown) {
    s.recent_desired.pop_front();
  }
  if (desired > planned) {
    int add = desired - planned;
    s.pending += add;
    stats_.scale_ups += add;
    spdlog::info("scale up profile {} {}: {} -> {} VMs", cpt::CptCodec::Fingerprint(s.cpt),
                 s.service, current, desired);
    for (int i = 0; i < add; ++i) {
      tasks_.Schedule(
          workers_, registry::Registry::FenceScope::Bind([this, cpt = s.cpt, service = s.service] {
            absl::StatusOr<std::string> ip = vms_.AddVm(cpt, service);
            if (!ip.ok()) {
              spdlog::warn("scale up failed: {}", ip.status().message());
            }
            absl::MutexLock lock(&mu_);
            auto it = series_.find({cpt, service});
            if (it != series_.end()) --it->second.pending;
          }));
    }
    return;
  }
  const int target = *std::max_element(s.recent_desired.begin(), s.recent_desired.end());
  if (target >= current) return;
  // Drain the newest ready VMs: the oldest have the most clients holding their address.
  std::vector<registry::VmRecord> ready;
  for (const registry::VmRecord& vm : registry_.ListVms(s.cpt)) {
    if (vm.service == s.service && vm.state == registry::VmState::kReady) ready.push_back(vm);
  }
  int drained = 0;
  for (size_t i = ready.size(); current - drained > target && i-- > 0;) {
    if (vms_.DrainVm(ready[i].name, clock_.Now() + options_.drain).ok()) ++drained;
  }
  if (drained > 0) {
    stats_.scale_downs += drained;
    spdlog::info("scale down profile {} {}: {} -> {} VMs", cpt::CptCodec::Fingerprint(s.cpt),
                 s.service, current, current - drained);
  }
}

void Scaler::PlanSpares(int64_t ended) {
  std::map<std::string, int64_t> arrived = vms_.TakeArrivals();
  for (const auto& [service, n] : arrived) {
    auto [it, created] = arrivals_.try_emplace(service);
    if (created) {
      it->second.service = service;
      it->second.history = forecast::DemandHistory({.capacity = options_.history_buckets,
                                                    .rollup_factor = kRollup,
                                                    .rollup_capacity = kRollupKept});
    }
  }
  int64_t wanted = 0;
  for (auto& [service, s] : arrivals_) {
    auto n = arrived.find(service);
    Observe(s, ended, n == arrived.end() ? 0 : static_cast<double>(n->second));
    Forecast(s, ended);
    std::vector<double> recent = s.history.Tail(1);
    double peak = recent.empty() ? 0 : recent.back();
    if (options_.mode == Mode::kPredictive) {
      for (double u : s.upper) peak = std::max(peak, u);
    }
    const int desired = static_cast<int>(std::ceil(std::max(0.0, peak) - 1e-9));
    std::vector<registry::VmRecord> ready;  // drained from the back
    int current = 0;
    for (const registry::VmRecord& vm : registry_.Spares(service)) {
      if (!Counts(vm.state)) continue;
      ++current;
      if (vm.state == registry::VmState::kReady) ready.push_back(vm);
    }
    // Scale-down stabilised as the HPA does: the target is the highest want
    // of the last `cooldown` buckets. Spares serve nobody, so all of those
    // above it drain at once.
    s.recent_desired.push_back(desired);
    while (static_cast<int>(s.recent_desired.size()) > options_.cooldown) {
      s.recent_desired.pop_front();
    }
    const int target = *std::max_element(s.recent_desired.begin(), s.recent_desired.end());
    s.desired = target;
    wanted += target;
    vms_.SetSpareTarget(service, target);
    for (size_t i = ready.size(); current > target && i-- > 0; --current) {
      if (vms_.DrainVm(ready[i].name, clock_.Now()).ok()) ++stats_.spares_drained;
    }
  }
  stats_.spare_target = wanted;
  vms_.RefillSpares();
}

void Scaler::Tick() {
  if (options_.mode == Mode::kOff) return;
  std::vector<store::Op> ops;
  std::shared_ptr<const registry::Registry::Fence> fence =
      registry::Registry::FenceScope::Current();
  {
    absl::MutexLock lock(&mu_);
    fence_ = fence;
    TickLocked(ops);
  }
  Write(ops, fence);
}

void Scaler::TickLocked(std::vector<store::Op>& ops) {
  int64_t bucket = BucketOf(clock_.Now());
  // Counts drained now belong to the bucket that just ended.
  int64_t ended = bucket - 1;
  std::map<std::pair<std::string, std::string>, int64_t> counts;
  for (const DemandTracker::Count& c : demand_.Drain()) counts[{c.cpt, c.service}] += c.requests;
  for (const auto& [key, n] : counts) {
    if (registry_.IsActive(key.first)) SeriesFor(key.first, key.second);
  }
  struct Want {
    Series* series;
    int desired;
    int uncapped;
    int tier;
  };
  std::vector<Want> wants;
  for (auto it = series_.begin(); it != series_.end();) {
    Series& s = it->second;
    if (!registry_.IsActive(s.cpt)) {  // invalidated or expired: the janitor drains it
      if (store_ != nullptr) {
        ops.push_back(store::Op::DeletePrefix(DemandPrefix(s.cpt, s.service)));
        ops.push_back(store::Op::Delete(LimitsKey(s.cpt, s.service)));
      }
      it = series_.erase(it);
      continue;
    }
    auto c = counts.find(it->first);
    Observe(s, ended, c == counts.end() ? 0 : static_cast<double>(c->second));
    Forecast(s, ended);
    std::optional<registry::ProfileRecord> p = registry_.GetProfile(s.cpt);
    int uncapped = 0;
    int desired = Need(s, ended, &uncapped);
    wants.push_back({&s, desired, uncapped, TierRank(p ? p->attributes.service_tier : "")});
    ++it;
  }
  // The global budget goes to premium tiers first, then the rest.
  std::stable_sort(wants.begin(), wants.end(),
                   [](const Want& a, const Want& b) { return a.tier < b.tier; });
  int budget = options_.budget;
  int64_t denied = 0;
  for (Want& w : wants) {
    int granted = std::min(w.desired, std::max(0, budget));
    budget -= granted;
    denied += w.desired - granted;
    Act(*w.series, granted, w.uncapped);
  }
  if (denied > 0 && stats_.budget_denied_last == 0) {
    spdlog::warn("scaler: the global budget of {} VMs denied {} VMs the forecasts wanted",
                 options_.budget, denied);
  }
  if (options_.adaptive_spares) PlanSpares(ended);
  stats_.budget_denied_last = denied;
  stats_.budget_denied_total += denied;
  stats_.budget = options_.budget;
  stats_.series = static_cast<int64_t>(series_.size());
  last_bucket_ = ended;
  if ((ended + 1) % options_.checkpoint_every == 0 || (ended + 1) % kRollup == 0) {
    CheckpointOps(ended, ops);
  }
}

void Scaler::CheckpointOps(int64_t last, std::vector<store::Op>& ops) {
  if (store_ == nullptr) return;
  const int64_t start = ChunkStart(last);
  const bool chunk_ends = (last + 1) % kRollup == 0;
  // Kept: the fine ring or the hourly roll-ups, whichever reaches back further.
  const int64_t kept = std::max<int64_t>(options_.history_buckets, int64_t{kRollup} * kRollupKept);
  const int64_t expired = start - (kept / kRollup + 1) * kRollup;
  const int64_t bucket_ms = absl::ToInt64Milliseconds(options_.bucket);
  for (auto& [key, s] : series_) {
    if (chunk_ends) ops.push_back(store::Op::Delete(ChunkKey(s.cpt, s.service, expired)));
    if (!s.dirty || s.history.empty() || s.history.last_bucket() != last) continue;
    s.dirty = false;
    std::vector<double> counts = s.history.Tail(static_cast<int>(last - start + 1));
    if (std::all_of(counts.begin(), counts.end(), [](double c) { return c == 0; })) continue;
    ppe::registry::v1::DemandChunk chunk;
    chunk.set_bucket_ms(bucket_ms);
    chunk.set_first_bucket(last - static_cast<int64_t>(counts.size()) + 1);
    for (double c : counts) chunk.add_counts(static_cast<float>(c));
    ops.push_back(store::Op::Put(ChunkKey(s.cpt, s.service, start), chunk.SerializeAsString()));
  }
}

void Scaler::Write(const std::vector<store::Op>& ops,
                   const std::shared_ptr<const registry::Registry::Fence>& fence) {
  if (store_ == nullptr) return;
  // Bounded transactions (~25 ms each for 4,000 ops on SQLite, store_bench),
  // so that the registry's own writes (a first-time client's VM) never wait
  // long behind one; etcd takes at most 128 ops.
  const size_t per_txn = static_cast<size_t>(std::max(1, options_.txn_ops));
  for (size_t from = 0; from < ops.size(); from += per_txn) {
    store::Txn txn;
    txn.success.assign(ops.begin() + from, ops.begin() + std::min(ops.size(), from + per_txn));
    int64_t puts = 0, bytes = 0;
    for (const store::Op& op : txn.success) {
      if (op.type != store::Op::Type::kPut) continue;
      ++puts;
      bytes += static_cast<int64_t>(op.key.size() + op.value.size());
    }
    // A leader's checkpoint: etcd refuses it once another replica leads, so a
    // deposed leader's late counts never overwrite the new leader's.
    absl::StatusOr<store::Txn> fenced = fence != nullptr ? (*fence)(txn) : txn;
    absl::StatusOr<store::TxnResult> r =
        fenced.ok() ? store_->Txn(*fenced) : absl::StatusOr<store::TxnResult>(fenced.status());
    if (r.ok() && !r->succeeded) r = absl::PermissionDeniedError("fenced: no longer the leader");
    absl::MutexLock lock(&mu_);
    if (r.ok()) {
      ++stats_.checkpoint_txns;
      stats_.checkpoint_puts += puts;
      stats_.checkpoint_bytes += bytes;
      continue;
    }
    spdlog::warn("scaler: checkpoint of {} keys failed: {}", txn.success.size(),
                 r.status().ToString());
    ++stats_.checkpoint_errors;
  }
}

absl::Status Scaler::Load() {
  if (store_ == nullptr) return absl::OkStatus();
  PPE_ASSIGN_OR_RETURN(store::RangeResult limits, store_->List(kLimitsPrefix));
  PPE_ASSIGN_OR_RETURN(store::RangeResult demand, store_->List(kDemandPrefix));
  const int64_t now = BucketOf(clock_.Now());
  const int64_t kept = std::max<int64_t>(options_.history_buckets, int64_t{kRollup} * kRollupKept);
  const int64_t bucket_ms = absl::ToInt64Milliseconds(options_.bucket);
  std::vector<store::Op> stale;
  int restored_limits = 0, restored_chunks = 0;
  {
    absl::MutexLock lock(&mu_);
    // What the store holds replaces what this scaler held (a replica elected
    // leader takes the previous leader's history); in-flight scale-ups and
    // the pools' decisions stay.
    for (auto& [key, s] : series_) {
      s.history = forecast::DemandHistory({.capacity = options_.history_buckets,
                                           .rollup_factor = kRollup,
                                           .rollup_capacity = kRollupKept});
      s.model.reset();
      s.fitted_at = -1;
      s.last_active = -1;
      s.next_mean = -1;
    }
    std::string cpt, service;
    for (const store::KeyValue& kv : limits.kvs) {
      ppe::registry::v1::ScalingLimits l;
      if (!SplitKey(kv.key, kLimitsPrefix, false, &cpt, &service) || !registry_.IsActive(cpt) ||
          !l.ParseFromString(kv.value)) {
        stale.push_back(store::Op::Delete(kv.key));
        continue;
      }
      Series& s = SeriesFor(cpt, service);
      s.min_override = l.min_vms();
      s.max_override = l.max_vms() == 0 ? -1 : l.max_vms();
      ++restored_limits;
    }
    for (const store::KeyValue& kv : demand.kvs) {
      ppe::registry::v1::DemandChunk chunk;
      // Keys of one series sort by bucket (zero-padded), so counts go in in order.
      if (!SplitKey(kv.key, kDemandPrefix, true, &cpt, &service) || !registry_.IsActive(cpt) ||
          !chunk.ParseFromString(kv.value) || chunk.bucket_ms() != bucket_ms ||
          chunk.first_bucket() + chunk.counts_size() <= now - kept || chunk.first_bucket() > now) {
        stale.push_back(store::Op::Delete(kv.key));
        continue;
      }
      Series& s = SeriesFor(cpt, service);
      for (int i = 0; i < chunk.counts_size(); ++i) {
        const int64_t b = chunk.first_bucket() + i;
        if (b <= now - kept || !s.history.Add(b, chunk.counts(i)).ok()) continue;
        if (chunk.counts(i) > 0) s.last_active = b;
      }
      ++restored_chunks;
    }
  }
  const size_t deleted = stale.size();
  if (!stale.empty()) {
    store::Txn txn;
    txn.success = std::move(stale);
    // A leader's reload runs in its fence: a deposed leader deletes nothing.
    std::shared_ptr<const registry::Registry::Fence> fence =
        registry::Registry::FenceScope::Current();
    PPE_ASSIGN_OR_RETURN(store::Txn fenced, fence != nullptr ? (*fence)(txn) : txn);
    PPE_RETURN_IF_ERROR(store_->Txn(fenced).status());
  }
  spdlog::info("scaler: restored {} limits and {} demand chunks; deleted {} stale keys",
               restored_limits, restored_chunks, deleted);
  return absl::OkStatus();
}

void Scaler::Start() {
  loop_.Start(options_.bucket, [this] { Tick(); });
}

void Scaler::Stop() {
  loop_.Stop();
  std::vector<store::Op> ops;
  std::shared_ptr<const registry::Registry::Fence> fence;
  {
    absl::MutexLock lock(&mu_);
    if (last_bucket_ >= 0) CheckpointOps(last_bucket_, ops);
    fence = fence_;
  }
  Write(ops, fence);
}

absl::Status Scaler::SetLimits(const std::string& cpt, const std::string& service, int min_vms,
                               int max_vms) {
  if (!registry_.IsActive(cpt)) return absl::NotFoundError("no active profile with that CPT");
  if (min_vms < 0 || max_vms < 0 || (max_vms > 0 && min_vms > max_vms)) {
    return absl::InvalidArgumentError("need 0 <= min <= max");
  }
  absl::MutexLock limits_lock(&limits_mu_);
  if (store_ != nullptr) {
    ppe::registry::v1::ScalingLimits l;
    l.set_min_vms(min_vms);
    l.set_max_vms(max_vms);
    if (absl::StatusOr<int64_t> put = store_->Put(LimitsKey(cpt, service), l.SerializeAsString());
        !put.ok()) {
      return put.status();
    }
  }
  absl::MutexLock lock(&mu_);
  Series& s = SeriesFor(cpt, service);
  s.min_override = min_vms;
  s.max_override = max_vms == 0 ? -1 : max_vms;
  return absl::OkStatus();
}

Scaler::View Scaler::ViewOf(const Series& s) const {
  View v;
  v.cpt = s.cpt;
  v.service = s.service;
  v.model = s.model ? s.model->Name() : (options_.mode == Mode::kPredictive ? "none yet" : "");
  v.history = s.history.Tail(120);
  v.mean = s.mean;
  v.lower = s.lower;
  v.upper = s.upper;
  v.lead_buckets = lead_buckets();
  v.desired = s.desired;
  const PoolCount count = CountVms(s);
  v.current = count.ready + count.starting;
  v.pending = s.pending;
  v.min_vms = s.min_override >= 0 ? s.min_override : options_.min_vms;
  v.max_vms = s.max_override >= 0 ? s.max_override : options_.max_vms;
  v.errors_counted = s.errors;
  v.mean_abs_error = s.errors ? s.abs_error_sum / s.errors : 0;
  return v;
}

absl::StatusOr<Scaler::View> Scaler::Describe(const std::string& cpt, const std::string& service) {
  absl::MutexLock lock(&mu_);
  auto it = series_.find({cpt, service});
  if (it == series_.end()) return absl::NotFoundError("no demand recorded for that profile");
  return ViewOf(it->second);
}

absl::StatusOr<Scaler::View> Scaler::ScaleNow(const std::string& cpt, const std::string& service) {
  if (!registry_.IsActive(cpt)) return absl::NotFoundError("no active profile with that CPT");
  absl::MutexLock lock(&mu_);
  Series& s = SeriesFor(cpt, service);
  int64_t bucket = last_bucket_ >= 0 ? last_bucket_ : 0;
  Forecast(s, bucket);
  int uncapped = 0;
  int desired = Need(s, bucket, &uncapped);
  Act(s, desired, uncapped);
  return ViewOf(s);
}

int Scaler::MinVms(const std::string& cpt, const std::string& service) const {
  absl::MutexLock lock(&mu_);
  auto it = series_.find({cpt, service});
  if (it != series_.end() && it->second.min_override >= 0) return it->second.min_override;
  return options_.min_vms;
}

Scaler::Stats Scaler::stats() const {
  absl::MutexLock lock(&mu_);
  Stats out = stats_;
  out.budget = options_.budget;  // configured: known before the first tick
  double sum = 0;
  int64_t n = 0;
  for (const auto& [_, s] : series_) {
    sum += s.abs_error_sum;
    n += s.errors;
  }
  out.mean_abs_error = n ? sum / n : 0;
  return out;
}

}  // namespace ppe::scaler
