#include "ppe-service/vm/usage_monitor.h"

#include <algorithm>
#include <iterator>
#include <set>
#include <vector>

#include "absl/time/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/cpt/cpt_codec.h"

namespace ppe::vm {
namespace {

bool Counts(registry::VmState s) {
  return s == registry::VmState::kProvisioning || s == registry::VmState::kBooting ||
         s == registry::VmState::kReady;
}

// Growth of a cumulative counter between two samples; nullopt when either is
// missing or the counter went back (the domain or its NIC was re-created).
std::optional<double> Delta(const std::optional<uint64_t>& before,
                            const std::optional<uint64_t>& now) {
  if (!before || !now || *now < *before) return std::nullopt;
  return static_cast<double>(*now - *before);
}

}  // namespace

std::optional<UsageMonitor::Options> UsageMonitor::OptionsFromConfig(
    const ppe::config::v1::PpeConfig& c) {
  const ppe::config::v1::Usage& u = c.usage();
  if (u.mode() == ppe::config::v1::Usage::OFF) return std::nullopt;
  return Options{.mode = u.mode() == ppe::config::v1::Usage::OBSERVE ? Mode::kObserve : Mode::kAct,
                 .poll_interval = absl::Seconds(u.poll_interval_s()),
                 .idle_cpu_percent = u.idle_cpu_percent(),
                 .idle_network_bytes_per_s = u.idle_network_bytes_per_s(),
                 .idle_period = absl::Seconds(u.idle_period_s()),
                 .busy_cpu_percent = u.busy_cpu_percent(),
                 .busy_period = absl::Seconds(u.busy_period_s()),
                 .drain = absl::Seconds(c.registry().drain_s())};
}

UsageMonitor::UsageMonitor(std::vector<Hypervisor*> hypervisors, registry::Registry& registry,
                           VmManager& vms, const Clock& clock, Options options)
    : hypervisors_(std::move(hypervisors)),
      registry_(registry),
      vms_(vms),
      clock_(clock),
      options_(std::move(options)) {}

void UsageMonitor::Start() {
  loop_.Start(options_.poll_interval, [this] {
    absl::StatusOr<Report> r = Poll();
    if (!r.ok()) spdlog::warn("usage monitor: {}", r.status().message());
  });
}

absl::StatusOr<UsageMonitor::Report> UsageMonitor::Poll() {
  absl::MutexLock poll_lock(&poll_mu_);
  const absl::Time started = absl::Now();
  // Every host's domains; a host that fails is skipped this round (its VMs
  // read as not running, so none of them is judged idle or busy).
  absl::StatusOr<std::vector<DomainStats>> stats = std::vector<DomainStats>{};
  int failed = 0;
  absl::Status last_error;
  for (Hypervisor* hypervisor : hypervisors_) {
    absl::StatusOr<std::vector<DomainStats>> host = hypervisor->Stats();
    if (!host.ok()) {
      ++failed;
      last_error = host.status();
      continue;
    }
    stats->insert(stats->end(), std::make_move_iterator(host->begin()),
                  std::make_move_iterator(host->end()));
  }
  const absl::Time now = clock_.Now();
  if (failed > 0 && failed == static_cast<int>(hypervisors_.size())) stats = last_error;
  if (!stats.ok()) {
    absl::MutexLock lock(&mu_);
    ++poll_stats_.polls;
    ++poll_stats_.errors;
    poll_stats_.last_duration = absl::Now() - started;
    return stats.status();
  }
  std::map<std::string, const DomainStats*> running;
  for (const DomainStats& s : *stats) running[s.name] = &s;
  std::vector<registry::VmRecord> vms = registry_.ListVms();
  // Newest first: an idle pool drains its newest VMs first, as the scaler does
  // (the oldest have the most clients holding their address).
  std::stable_sort(vms.begin(), vms.end(),
                   [](const registry::VmRecord& a, const registry::VmRecord& b) {
                     return a.created > b.created;
                   });

  Report report;
  // (pool, its idle VMs) to drain once the lock is released.
  std::vector<std::pair<PoolKey, std::vector<std::string>>> to_drain;
  {
    absl::MutexLock lock(&mu_);
    // A pool that gained a VM since the last poll restarts its busy clocks:
    // the scaler then asks for at most one more VM per busy period.
    std::set<PoolKey> grown;
    for (const registry::VmRecord& vm : vms) {
      if (vm.cpt.empty() || vm.state != registry::VmState::kReady || !running.contains(vm.name)) {
        continue;
      }
      auto old = tracked_.find(vm.name);
      if (old == tracked_.end() || old->second.cpt != vm.cpt) grown.insert({vm.cpt, vm.service});
    }
    for (auto& [service, u] : services_) {
      u.memory_bytes = 0;
      u.unmeasured = u.idle = u.busy = u.active = 0;
    }
    std::map<std::string, Tracked> next;
    std::map<PoolKey, PoolUsage> pools;
    for (const registry::VmRecord& vm : vms) {
      if (vm.state != registry::VmState::kReady) continue;
      auto run = running.find(vm.name);
      if (run == running.end()) continue;  // not running: the reconcile's business
      const DomainStats& st = *run->second;
      Tracked t;
      if (auto old = tracked_.find(vm.name); old != tracked_.end()) t = old->second;
      const PoolKey key{vm.cpt, vm.service};
      t.cpt = vm.cpt;
      t.service = vm.service;
      ServiceUsage& su = services_[vm.service];
      if (st.memory_kib) su.memory_bytes += static_cast<double>(*st.memory_kib) * 1024;

      const double dt = absl::ToDoubleSeconds(now - t.at);
      std::optional<double> cpu_ns = Delta(t.last.cpu_time_ns, st.cpu_time_ns);
      State state = State::kUnmeasured;
      if (cpu_ns && dt > 0) {
        su.cpu_seconds += *cpu_ns / 1e9;
        const double cpu_percent = 100 * (*cpu_ns / 1e9) / dt / std::max(1u, st.vcpus);
        std::optional<double> rx = Delta(t.last.rx_bytes, st.rx_bytes);
        std::optional<double> tx = Delta(t.last.tx_bytes, st.tx_bytes);
        if (rx && tx) {
          su.rx_bytes += *rx;
          su.tx_bytes += *tx;
        }
        // Quiet: CPU below the threshold at every poll, and the bytes since the
        // window started within idle_network_bytes_per_s over the idle period
        // (a few ARP broadcasts are not a client). Unknown bytes: not quiet.
        const double budget_per_s = options_.idle_network_bytes_per_s;
        const double period_s = absl::ToDoubleSeconds(options_.idle_period);
        if (cpu_percent < options_.idle_cpu_percent && rx && tx) {
          const double bytes = *rx + *tx;
          if (t.quiet_since == absl::InfiniteFuture()) {
            t.quiet_since = t.at;
            t.quiet_bytes = 0;
          }
          t.quiet_bytes += bytes;
          if (t.quiet_bytes >
              budget_per_s * std::max(period_s, absl::ToDoubleSeconds(now - t.quiet_since))) {
            // Over the budget: the window starts again with this interval.
            t.quiet_since = bytes <= budget_per_s * period_s ? t.at : absl::InfiniteFuture();
            t.quiet_bytes = bytes;
          }
        } else {
          t.quiet_since = absl::InfiniteFuture();
        }
        spdlog::debug("usage: VM {} {:.2f}% CPU, {} B in, {} B out over {:.1f} s", vm.name,
                      cpu_percent, rx.value_or(-1), tx.value_or(-1), dt);
        t.hot_since = cpu_percent >= options_.busy_cpu_percent ? std::min(t.hot_since, t.at)
                                                               : absl::InfiniteFuture();
        if (grown.contains(key) && t.hot_since != absl::InfiniteFuture()) t.hot_since = now;
        if (now - t.quiet_since >= options_.idle_period) {
          state = State::kIdle;
        } else if (now - t.hot_since >= options_.busy_period) {
          state = State::kBusy;
        } else {
          state = State::kActive;
        }
      } else {
        t.quiet_since = t.hot_since = absl::InfiniteFuture();
      }
      t.last = st;
      t.at = now;
      t.state = state;
      switch (state) {
        case State::kUnmeasured:
          ++su.unmeasured;
          ++report.unmeasured;
          break;
        case State::kIdle:
          ++su.idle;
          ++report.idle;
          break;
        case State::kBusy:
          ++su.busy;
          ++report.busy;
          break;
        case State::kActive:
          ++su.active;
          break;
      }
      if (state != State::kUnmeasured) ++report.measured;
      if (!vm.cpt.empty()) {  // a profile's pool (spares are nobody's)
        PoolUsage& pu = pools[key];
        pu.measured += state != State::kUnmeasured;
        pu.idle += state == State::kIdle;
        pu.busy += state == State::kBusy;
      }
      next[vm.name] = std::move(t);
    }
    // When a pool last lost a VM for idleness outlives the VMs: the scaler
    // reads it to tell demand that came back from demand it forecast.
    for (const auto& [key, pu] : pools_) {
      if (pu.idle_released != absl::InfinitePast() && registry_.IsActive(key.first)) {
        pools[key].idle_released = pu.idle_released;
      }
    }
    tracked_ = std::move(next);
    pools_ = std::move(pools);
    if (options_.mode == Mode::kAct) {
      for (const auto& [key, pu] : pools_) {
        // A busy pool keeps its idle VMs: they are the capacity its clients
        // move to as their cached answers expire.
        if (pu.idle == 0 || pu.busy > 0) continue;
        std::vector<std::string> idle;
        for (const registry::VmRecord& vm : vms) {
          auto t = tracked_.find(vm.name);
          if (t != tracked_.end() && t->second.state == State::kIdle &&
              t->second.cpt == key.first && t->second.service == key.second) {
            idle.push_back(vm.name);
          }
        }
        to_drain.emplace_back(key, std::move(idle));
      }
    }
  }

  // The actions: every replica measures, only the leader drains (fenced).
  auto act = [&] {
    for (const auto& [key, idle] : to_drain) {
      const int floor = min_vms_ ? std::max(0, min_vms_(key.first, key.second)) : 0;
      int active = 0;
      for (const registry::VmRecord& vm : vms) {
        active += vm.cpt == key.first && vm.service == key.second && Counts(vm.state);
      }
      for (const std::string& name : idle) {
        if (active <= floor) break;
        if (absl::Status s = vms_.DrainVm(name, now + options_.drain); !s.ok()) {
          ++report.errors;
          spdlog::warn("usage monitor: draining idle VM {}: {}", name, s.message());
          continue;
        }
        --active;
        ++report.drained;
        spdlog::info("usage monitor: VM {} of profile {} {} idle for {}: draining", name,
                     cpt::CptCodec::Fingerprint(key.first), key.second,
                     absl::FormatDuration(options_.idle_period));
        absl::MutexLock lock(&mu_);
        PoolUsage& pu = pools_[key];
        pu.idle_released = now;
        --pu.idle;
        --pu.measured;
        ServiceUsage& su = services_[key.second];
        ++su.idle_releases;
        --su.idle;
        tracked_.erase(name);
      }
    }
  };
  if (to_drain.empty()) {
  } else if (leader_gate_) {
    leader_gate_(act);
  } else {
    act();
  }
  absl::MutexLock lock(&mu_);
  ++poll_stats_.polls;
  poll_stats_.errors += report.errors > 0;
  poll_stats_.last_duration = absl::Now() - started;
  return report;
}

PoolUsage UsageMonitor::Pool(const std::string& cpt, const std::string& service) const {
  absl::MutexLock lock(&mu_);
  auto it = pools_.find({cpt, service});
  return it == pools_.end() ? PoolUsage{} : it->second;
}

std::map<std::string, UsageMonitor::ServiceUsage> UsageMonitor::ByService() const {
  absl::MutexLock lock(&mu_);
  return services_;
}

UsageMonitor::PollStats UsageMonitor::poll_stats() const {
  absl::MutexLock lock(&mu_);
  return poll_stats_;
}

}  // namespace ppe::vm
