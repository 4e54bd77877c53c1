#include "ppe-service/replay/score.h"

#include <algorithm>

namespace ppe::replay {

int Setup::Need(const Profile& p, int t) const {
  return static_cast<int>(std::ceil(p.demand[t] / per_vm() - 1e-9));
}

double Setup::BootP90() const { return boot_median * std::exp(1.2816 * boot_sigma); }

void Score::Add(const Score& o) {
  requests += o.requests;
  cold += o.cold;
  vm_seconds += o.vm_seconds;
  created += o.created;
  released += o.released;
  buckets = std::max(buckets, o.buckets);
  for (const auto& [k, w] : o.waits) waits[k] += w;
}

double Score::LatencyMs(double q) const {
  if (requests <= 0) return 0;
  double warm = std::max(0.0, requests - cold);
  double rank = q * requests;
  if (rank <= warm) return 0;
  double seen = warm;
  for (const auto& [k, w] : waits) {
    seen += w;
    if (seen >= rank - 1e-9) return k / 10.0;
  }
  return waits.empty() ? 0 : waits.rbegin()->first / 10.0;
}

void ScoreBucket(const Setup& s, const Profile& p, int t, const std::vector<SimVm>& vms,
                 Score& sc) {
  if (t < s.warmup_buckets) return;
  const double from = t * s.bucket_seconds, to = from + s.bucket_seconds;
  std::vector<double> cuts = {from, to};
  for (const SimVm& vm : vms) {
    for (double e : {vm.ready, vm.serve_end}) {
      if (e > from && e < to) cuts.push_back(e);
    }
    sc.vm_seconds += std::max(0.0, std::min(to, vm.released) - std::max(from, vm.created));
    sc.created += !vm.taken_over && vm.created >= from && vm.created < to;
    sc.released += !vm.handed_over && vm.released >= from && vm.released < to;
  }
  std::sort(cuts.begin(), cuts.end());
  const double rate = p.demand[t] / s.bucket_seconds;  // requests per second
  const double cap = s.boot_median > 0 ? s.BootP90() : 0;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const double a = cuts[i], b = cuts[i + 1];
    if (b <= a) continue;
    double serving = 0, next_ready = INFINITY;
    for (const SimVm& vm : vms) {
      serving += vm.ready <= a && vm.serve_end >= b;
      if (vm.ready >= b && vm.serve_end > vm.ready) next_ready = std::min(next_ready, vm.ready);
    }
    const double short_rate = rate - serving * s.capacity;
    if (short_rate <= 1e-12) continue;
    const double cold = short_rate * (b - a);
    sc.cold += cold;
    const double wait = std::max(0.0, std::min(next_ready - (a + b) / 2, cap));
    sc.waits[std::llround(wait * 1e4)] += cold;
  }
  sc.requests += p.demand[t];
  ++sc.buckets;
}

Score OracleScore(const Setup& s, const Profile& p) {
  Score sc;
  const int w = s.warmup_buckets;
  for (int t = w; t < s.buckets(); ++t) {
    const int need = s.Need(p, t), before = t > w ? s.Need(p, t - 1) : 0;
    sc.requests += p.demand[t];
    sc.vm_seconds += need * s.bucket_seconds;
    sc.created += std::max(0, need - before);
    sc.released += t > w ? std::max(0, before - need) : 0;
    ++sc.buckets;
  }
  return sc;
}

}  // namespace ppe::replay
