#include "ppe-service/replay/baseline_policies.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <map>

namespace ppe::replay {
namespace {

int Buckets(const Setup& s, double seconds) {
  return std::max(1, static_cast<int>(std::ceil(seconds / s.bucket_seconds - 1e-9)));
}

// VM slots 0, 1, ...: slot k is in use in a bucket that needs more than k
// VMs. `keep(k, idle)` says whether slot k's idle VM stays at the end of a
// bucket; `prewarm(k, idle)` whether an absent slot k is created at the start
// of the next bucket ahead of use. A request finding the live VMs full
// creates the missing ones at once, at the start of the bucket (demand at a
// steady rate above the live VMs' capacity finds them full from its start).
Score SlotPolicy(const Setup& s, const Profile& p, BootLatency& boot,
                 const std::function<bool(int, int)>& keep,
                 const std::function<bool(int, int)>& prewarm,
                 const std::function<void(int, int)>& on_use) {  // slot, idle buckets before
  std::vector<SimVm> vms;
  std::vector<int> live;      // slot -> index in vms, or -1
  std::vector<int> last_use;  // slot -> last bucket in use
  size_t made = 0;
  Score sc;
  const double b = s.bucket_seconds;
  for (int t = 0; t < s.buckets(); ++t) {
    const int need = s.Need(p, t);
    if (static_cast<int>(live.size()) < need) live.resize(need, -1), last_use.resize(need, -1);
    for (int k = 0; k < need; ++k) {
      if (live[k] < 0) {
        const double at = t * b;
        vms.push_back({at, at + boot.At(made++)});
        live[k] = static_cast<int>(vms.size()) - 1;
      }
      if (last_use[k] >= 0 && t - last_use[k] > 1) on_use(k, t - last_use[k] - 1);
      last_use[k] = t;
    }
    ScoreBucket(s, p, t, vms, sc);
    const double end = (t + 1) * b;
    for (int k = 0; k < static_cast<int>(live.size()); ++k) {
      const int idle = t - last_use[k];  // buckets since the slot's last use
      if (live[k] >= 0 && k >= need && !keep(k, idle)) {
        vms[live[k]].serve_end = vms[live[k]].released = end;
        live[k] = -1;
      } else if (live[k] < 0 && last_use[k] >= 0 && prewarm(k, idle)) {
        vms.push_back({end, end + boot.At(made++)});
        live[k] = static_cast<int>(vms.size()) - 1;
      }
    }
  }
  return sc;
}

}  // namespace

Score StaticPeak(const Setup& s, const Profile& p) {
  int peak = 0;
  for (int t = s.warmup_buckets; t < s.buckets(); ++t) peak = std::max(peak, s.Need(p, t));
  std::vector<SimVm> vms(peak, SimVm{-1e18, -1e18});
  Score sc;
  for (int t = s.warmup_buckets; t < s.buckets(); ++t) ScoreBucket(s, p, t, vms, sc);
  sc.created = peak;
  return sc;
}

Score KeepAlive(const Setup& s, const Profile& p, BootLatency& boot, double keep_alive_seconds) {
  const int keep_alive = Buckets(s, keep_alive_seconds);
  return SlotPolicy(
      s, p, boot, [&](int, int idle) { return idle < keep_alive; }, [](int, int) { return false; },
      [](int, int) {});
}

Score HybridHistogram(const Setup& s, const Profile& p, BootLatency& boot, double head,
                      double tail) {
  std::map<int, std::vector<int>> idle_times;  // per slot, buckets
  auto window = [&](int k, double q) {
    std::vector<int> sorted = idle_times[k];
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<size_t>(q * (sorted.size() - 1))];
  };
  const int fixed = Buckets(s, 600);
  const int boot_buckets = static_cast<int>(std::ceil(s.boot_median / s.bucket_seconds));
  return SlotPolicy(
      s, p, boot,
      [&](int k, int idle) {
        if (idle_times[k].size() < 10) return idle < fixed;  // until learned
        const int pre = window(k, head), keep = window(k, tail);
        // Unloaded between the idle start and the pre-warm point; kept until keep-alive.
        return idle < keep && idle >= pre - boot_buckets;
      },
      [&](int k, int idle) {
        if (idle_times[k].size() < 10) return false;
        const int pre = window(k, head), keep = window(k, tail);
        return idle + 1 >= pre - boot_buckets && idle < keep;
      },
      [&](int k, int idle) { idle_times[k].push_back(idle); });
}

Score TargetTracking(const Setup& s, const Profile& p, BootLatency& boot, double utilisation,
                     double stabilisation_seconds) {
  std::vector<SimVm> vms;
  std::vector<int> live;                   // indices in vms, oldest first
  std::deque<std::pair<int, int>> recent;  // (bucket, desired) within the window
  size_t made = 0;
  Score sc;
  const double b = s.bucket_seconds;
  for (int t = 0; t < s.buckets(); ++t) {
    ScoreBucket(s, p, t, vms, sc);
    const double end = (t + 1) * b;
    const double rate = p.demand[t] / b;
    const int desired = static_cast<int>(std::ceil(rate / (s.capacity * utilisation) - 1e-9));
    recent.push_back({t, desired});
    while ((t - recent.front().first) * b >= stabilisation_seconds) recent.pop_front();
    int stabilised = 0;
    for (const auto& [bucket, d] : recent) stabilised = std::max(stabilised, d);
    const int n = static_cast<int>(live.size());
    if (desired > n) {
      for (int i = n; i < desired; ++i) {
        vms.push_back({end, end + boot.At(made++)});
        live.push_back(static_cast<int>(vms.size()) - 1);
      }
    } else if (stabilised < n) {
      for (int i = stabilised; i < n; ++i) {
        vms[live.back()].serve_end = vms[live.back()].released = end;
        live.pop_back();
      }
    }
  }
  return sc;
}

}  // namespace ppe::replay
