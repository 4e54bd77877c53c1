// The evaluation of docs/design.md, "Scaling". A real request-rate trace (requests per minute) is
// replayed one bucket a minute on a simulated clock through the PPE's own
// Scaler, Registry, VmManager and Janitor (predictive, and its reactive mode),
// and through baseline policies, all with the same simulated boot latency:
//
//   oracle             exactly the VMs each minute needs, ready in time
//   static peak        the window's peak need, always on
//   allocate on query  the prior art: a VM is created when a request finds none
//                      free, released once idle for 1 minute ("reactive") or
//                      10 minutes ("fixed keep-alive")
//   hybrid histogram   per VM slot, the keep-alive / pre-warm windows of
//                      Shahrad et al. (USENIX ATC 2020) learned online from the
//                      slot's idle times (5th and 99th percentiles), fixed
//                      10-minute keep-alive until 10 idle times are seen
//
// The hypervisor is simulated (the fake behind the real Hypervisor interface,
// instant): a VM created at time c serves from c + boot, boot drawn from a
// lognormal distribution (same sequence for every policy). Requests arrive
// at a steady rate within each minute and each serving VM takes up to its
// per-minute capacity at that rate. Printed per policy: cold-start rate
// (share of requests that arrive when the serving VMs are full), minutes with
// any cold request, added latency (a cold request waits for the next VM to be
// ready; mean over all requests, ms), VM-hours against the oracle's (booting
// and draining VMs count), and VMs created and released. No assertions.
//
//   replay_eval --series FILE [--name N] [--start_day D] [--warmup_days 3]
//               [--days 2] [--peak_vms 20] [--boot_median_s 30] [--boot_sigma 0.5]
//               [--cooldown_buckets N (default: the scaler's)]
//
// FILE: one count per line (tests/bench/replay_eval.sh prepares the traces).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/forecast/series_io.h"
#include "ppe-service/lifecycle/janitor.h"
#include "ppe-service/scaler/scaler.h"
#include "ppe-service/store/memory_registry_store.h"
#include "tests/mocks/fake_hypervisor.h"

namespace ppe {
namespace {

constexpr double kBucket = 60;  // seconds

struct Setup {
  std::vector<double> demand;  // requests per minute, the whole replay
  int scored_from = 0;         // first scored minute
  double per_vm = 1;           // requests per minute one VM serves
  double boot_median = 30, boot_sigma = 0.5;
  int cooldown = scaler::Scaler::Options{}.cooldown;  // scaler.cooldown_buckets
};

// Boot latencies in creation order: the k-th VM any policy creates boots in
// Boot(k) seconds.
class BootLatency {
 public:
  BootLatency(double median, double sigma) : dist_(std::log(median), sigma) {}
  double operator()(size_t k) {
    while (drawn_.size() <= k) drawn_.push_back(dist_(rng_));
    return drawn_[k];
  }

 private:
  std::mt19937_64 rng_{20261203};
  std::lognormal_distribution<double> dist_;
  std::vector<double> drawn_;
};

// Seconds: it costs from `created` to `released` and serves from `ready` to
// `serve_end` (a draining VM is no longer answered but still runs).
struct Vm {
  double created = 0, ready = 0, serve_end = INFINITY, released = INFINITY;
};

struct Score {
  double requests = 0, cold = 0, vm_seconds = 0, wait_seconds = 0;
  int short_minutes = 0, minutes = 0, created = 0, released = 0;
};

int Need(const Setup& s, int t) { return static_cast<int>(std::ceil(s.demand[t] / s.per_vm)); }

// The boot latency's 90th percentile, seconds.
double BootP90(const Setup& s) { return s.boot_median * std::exp(1.2816 * s.boot_sigma); }

// Scores minute t given every VM that ever existed. Requests arrive at a
// steady rate through the minute; between two events (a VM becoming ready or
// stopping to serve) the serving VMs take their share of it and the rest is
// cold. A cold request waits for the next VM to become ready, at most the
// boot time's 90th percentile when none is booting (its own would be created).
void ScoreMinute(const Setup& s, int t, const std::vector<Vm>& vms, Score& sc) {
  if (t < s.scored_from) return;
  const double from = t * kBucket, to = from + kBucket;
  std::vector<double> cuts = {from, to};
  for (const Vm& vm : vms) {
    for (double e : {vm.ready, vm.serve_end}) {
      if (e > from && e < to) cuts.push_back(e);
    }
    sc.vm_seconds += std::max(0.0, std::min(to, vm.released) - std::max(from, vm.created));
    sc.created += vm.created >= from && vm.created < to;
    sc.released += vm.released >= from && vm.released < to;
  }
  std::sort(cuts.begin(), cuts.end());
  const double rate = s.demand[t] / kBucket;  // requests per second
  double cold = 0;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const double a = cuts[i], b = cuts[i + 1];
    if (b <= a) continue;
    double serving = 0, next_ready = INFINITY;
    for (const Vm& vm : vms) {
      serving += vm.ready <= a && vm.serve_end >= b;
      if (vm.ready >= b) next_ready = std::min(next_ready, vm.ready);
    }
    const double short_rate = rate - serving * s.per_vm / kBucket;
    if (short_rate <= 1e-12) continue;
    cold += short_rate * (b - a);
    sc.wait_seconds += short_rate * (b - a) * std::min(next_ready - (a + b) / 2, BootP90(s));
  }
  sc.requests += s.demand[t];
  sc.cold += cold;
  sc.short_minutes += cold > 1e-6;
  ++sc.minutes;
}

Score Oracle(const Setup& s) {
  Score sc;
  for (int t = s.scored_from; t < static_cast<int>(s.demand.size()); ++t) {
    sc.requests += s.demand[t];
    sc.vm_seconds += Need(s, t) * kBucket;
    sc.created += std::max(0, Need(s, t) - (t > s.scored_from ? Need(s, t - 1) : 0));
    sc.released += t > s.scored_from ? std::max(0, Need(s, t - 1) - Need(s, t)) : 0;
    ++sc.minutes;
  }
  return sc;
}

Score StaticPeak(const Setup& s) {
  int peak = 0;
  for (int t = s.scored_from; t < static_cast<int>(s.demand.size()); ++t) {
    peak = std::max(peak, Need(s, t));
  }
  std::vector<Vm> vms(peak, Vm{-1e9, -1e9});
  Score sc;
  for (int t = s.scored_from; t < static_cast<int>(s.demand.size()); ++t) {
    ScoreMinute(s, t, vms, sc);
  }
  sc.created = peak;
  return sc;
}

// VM slots 0, 1, ...: slot k is in use in a minute that needs more than k VMs.
// `keep(k, t)` says whether slot k's idle VM stays at the end of minute t;
// `prewarm(k, t)` whether an absent slot k is created at the start of minute
// t + 1 ahead of use. A request finding the live VMs full creates the missing
// ones at once: at the start of the minute, as demand arriving at a steady
// rate above the live VMs' capacity finds them full from its start.
Score SlotPolicy(const Setup& s, BootLatency& boot,
                 const std::function<bool(int, int, int)>& keep,  // slot, minute, idle minutes
                 const std::function<bool(int, int, int)>& prewarm,
                 const std::function<void(int, int)>& on_use) {  // slot, idle minutes before
  std::vector<Vm> vms;
  std::vector<int> live;      // slot -> index in vms, or -1
  std::vector<int> last_use;  // slot -> last minute in use
  size_t made = 0;
  Score sc;
  for (int t = 0; t < static_cast<int>(s.demand.size()); ++t) {
    const int need = Need(s, t);
    if (static_cast<int>(live.size()) < need) live.resize(need, -1), last_use.resize(need, -1);
    for (int k = 0; k < need; ++k) {
      if (live[k] < 0) {
        const double at = t * kBucket;
        vms.push_back({at, at + boot(made++)});
        live[k] = static_cast<int>(vms.size()) - 1;
      }
      if (last_use[k] >= 0 && t - last_use[k] > 1) on_use(k, t - last_use[k] - 1);
      last_use[k] = t;
    }
    ScoreMinute(s, t, vms, sc);
    const double end = (t + 1) * kBucket;
    for (int k = 0; k < static_cast<int>(live.size()); ++k) {
      const int idle = t - last_use[k];  // minutes since the slot's last use
      if (live[k] >= 0 && k >= need && !keep(k, t, idle)) {
        vms[live[k]].serve_end = vms[live[k]].released = end;
        live[k] = -1;
      } else if (live[k] < 0 && last_use[k] >= 0 && prewarm(k, t, idle)) {
        vms.push_back({end, end + boot(made++)});
        live[k] = static_cast<int>(vms.size()) - 1;
      }
    }
  }
  return sc;
}

Score AllocateOnQuery(const Setup& s, BootLatency& boot, int keep_alive) {
  return SlotPolicy(
      s, boot, [&](int, int, int idle) { return idle < keep_alive; },
      [](int, int, int) { return false; }, [](int, int) {});
}

Score HybridHistogram(const Setup& s, BootLatency& boot) {
  std::map<int, std::vector<int>> idle_times;  // per slot, minutes
  auto window = [&](int k, double q) {
    std::vector<int> sorted = idle_times[k];
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<size_t>(q * (sorted.size() - 1))];
  };
  const int boot_minutes = static_cast<int>(std::ceil(s.boot_median / kBucket));
  return SlotPolicy(
      s, boot,
      [&](int k, int, int idle) {
        if (idle_times[k].size() < 10) return idle < 10;  // fixed keep-alive until learned
        const int pre = window(k, 0.05), keep = window(k, 0.99);
        // Unloaded between the idle start and the pre-warm point; kept until keep-alive.
        return idle < keep && idle >= pre - boot_minutes;
      },
      [&](int k, int, int idle) {
        if (idle_times[k].size() < 10) return false;
        const int pre = window(k, 0.05), keep = window(k, 0.99);
        return idle + 1 >= pre - boot_minutes && idle < keep;
      },
      [&](int k, int idle) { idle_times[k].push_back(idle); });
}

// The PPE: its own scaler, registry, VM manager and janitor, one profile.
Score Ppe(const Setup& s, BootLatency& boot, scaler::Scaler::Mode mode) {
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000 / 86400 * 86400);
  store::MemoryRegistryStore store;
  registry::Registry registry(store);
  if (!registry.Load().ok()) std::abort();
  testing::FakeHypervisor hypervisor;
  auto pool = std::make_shared<vm::AddressPool>(*vm::AddressPool::Create("10.0.0.0/16"));
  ThreadPool workers(2);
  ManualClock clock(t0);
  vm::ServicePlacement placement;
  placement.service = "video";
  placement.shape.name = "cpu-heavy";  // 1 vCPU, 256 MiB
  placement.addresses = pool;
  vm::VmManager vms(hypervisor, registry, {placement}, workers, clock,
                    {.max_vms_per_profile = 100000, .max_vms_total = 100000});
  lifecycle::Janitor janitor(registry, vms, clock,
                             {.idle_expiry = absl::Hours(24 * 365), .drain = absl::Seconds(60)});
  scaler::DemandTracker demand;
  // The lead time: the boot time the real scaler measures (here the fake's,
  // about 0) plus a buffer, set to the boot latency's 90th percentile.
  const double boot_p90 = BootP90(s);
  scaler::Scaler::Options options;
  options.mode = mode;
  options.bucket = absl::Seconds(kBucket);
  options.lead_buffer = absl::Seconds(boot_p90);
  options.periods = {1440};
  options.max_vms = 100000;
  options.budget = 100000;
  options.drain = absl::Seconds(60);
  options.cooldown = s.cooldown;
  options.requests_per_vm["video"] = s.per_vm;
  scaler::Scaler scaler(registry, vms, demand, workers, clock, options);
  const std::string cpt = "replayprofile0000";
  if (!registry.RegisterProfile(cpt, {.service_tier = "standard"}, "admin", t0).ok()) std::abort();

  std::map<std::string, size_t> index;  // VM name -> position in `seen`
  std::vector<Vm> seen;
  size_t made = 0;
  // The registry's VMs as the simulation sees them at the start of a minute:
  // new ones boot from their creation; draining ones stopped serving at the
  // tick that drained them, released ones stopped costing at the janitor's.
  auto sync = [&] {
    const double now = absl::ToDoubleSeconds(clock.Now() - t0);
    std::map<std::string, bool> present;
    for (const registry::VmRecord& vm : registry.ListVms(cpt)) {
      present[vm.name] = true;
      auto [it, fresh] = index.try_emplace(vm.name, seen.size());
      if (fresh) {
        const double c = absl::ToDoubleSeconds(vm.created - t0);
        seen.push_back({c, c + boot(made++)});
      }
      Vm& v = seen[it->second];
      if (vm.state == registry::VmState::kDraining && std::isinf(v.serve_end)) v.serve_end = now;
    }
    for (auto& [name, i] : index) {
      if (!present.count(name) && std::isinf(seen[i].released)) {
        seen[i].released = now;
        seen[i].serve_end = std::min(seen[i].serve_end, now);
      }
    }
  };
  Score sc;
  for (int t = 0; t < static_cast<int>(s.demand.size()); ++t) {
    demand.Record(cpt, "video", static_cast<int64_t>(std::llround(s.demand[t])));
    sync();
    ScoreMinute(s, t, seen, sc);
    clock.Advance(absl::Seconds(kBucket));
    scaler.Tick();
    // Wait for the scale-ups the tick scheduled (the fake creates instantly).
    for (int i = 0; i < 2000; ++i) {
      absl::StatusOr<scaler::Scaler::View> v = scaler.Describe(cpt, "video");
      if (!v.ok() || v->current >= v->desired) break;
      absl::SleepFor(absl::Microseconds(50));
    }
    janitor.Tick();
  }
  return sc;
}

void Print(const char* name, const Score& sc, const Score& oracle) {
  std::printf("| %-35s | %9.3f%% | %8.2f%% | %9.1f | %7.2f | %6d | %7d |\n", name,
              100 * sc.cold / std::max(1.0, sc.requests),
              100.0 * sc.short_minutes / std::max(1, sc.minutes),
              1000 * sc.wait_seconds / std::max(1.0, sc.requests),
              sc.vm_seconds / std::max(1.0, oracle.vm_seconds), sc.created, sc.released);
}

}  // namespace
}  // namespace ppe

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // one line per VM otherwise
  std::string path, name = "trace";
  int start_day = 0, warmup_days = 3, days = 2;
  double peak_vms = 20, boot_median = 30, boot_sigma = 0.5;
  int cooldown = ppe::scaler::Scaler::Options{}.cooldown;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--series")
      path = v;
    else if (a == "--name")
      name = v;
    else if (a == "--start_day")
      start_day = std::atoi(v.c_str());
    else if (a == "--warmup_days")
      warmup_days = std::atoi(v.c_str());
    else if (a == "--days")
      days = std::atoi(v.c_str());
    else if (a == "--peak_vms")
      peak_vms = std::atof(v.c_str());
    else if (a == "--boot_median_s")
      boot_median = std::atof(v.c_str());
    else if (a == "--boot_sigma")
      boot_sigma = std::atof(v.c_str());
    else if (a == "--cooldown_buckets")
      cooldown = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "replay_eval: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  std::ifstream in(path);
  if (path.empty() || !in) {
    std::fprintf(stderr, "replay_eval: need --series FILE (one count per line)\n");
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<double>> all = ppe::forecast::ParseSeries(text.str());
  if (!all.ok()) {
    std::fprintf(stderr, "replay_eval: %s\n", std::string(all.status().message()).c_str());
    return 2;
  }
  const size_t from = static_cast<size_t>(start_day) * 1440;
  const size_t len = static_cast<size_t>(warmup_days + days) * 1440;
  if (all->size() < from + len) {
    std::fprintf(stderr, "replay_eval: the series has %zu minutes, need %zu\n", all->size(),
                 from + len);
    return 2;
  }
  ppe::Setup s;
  s.demand.assign(all->begin() + from, all->begin() + from + len);
  for (double& d : s.demand) d = std::isfinite(d) ? std::max(0.0, d) : 0.0;
  s.scored_from = warmup_days * 1440;
  double peak = *std::max_element(s.demand.begin() + s.scored_from, s.demand.end());
  s.per_vm = std::max(1.0, peak / peak_vms);
  s.boot_median = boot_median;
  s.boot_sigma = boot_sigma;
  s.cooldown = std::max(1, cooldown);

  std::printf(
      "%s: days %d..%d scored after %d days of warm-up; peak %.0f requests/min, "
      "%.0f per VM (peak %.0f VMs); boot lognormal, median %.0f s, sigma %.2f; PPE cooldown %d "
      "buckets\n\n",
      name.c_str(), start_day + warmup_days, start_day + warmup_days + days - 1, warmup_days, peak,
      s.per_vm, peak_vms, boot_median, boot_sigma, s.cooldown);
  std::printf("| %-35s | %10s | %9s | %9s | %7s | %6s | %7s |\n", "policy", "cold req.",
              "short min", "added ms", "VM-h/or", "create", "release");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|\n", std::string(37, '-').c_str(),
              std::string(12, '-').c_str(), std::string(11, '-').c_str(),
              std::string(11, '-').c_str(), std::string(9, '-').c_str(),
              std::string(8, '-').c_str(), std::string(9, '-').c_str());
  ppe::Score oracle = ppe::Oracle(s);
  ppe::Print("oracle", oracle, oracle);
  ppe::Print("static peak", ppe::StaticPeak(s), oracle);
  // Each policy draws the same boot latencies, from a fresh sequence.
  auto run = [&](const char* policy, const std::function<ppe::Score(ppe::BootLatency&)>& replay) {
    ppe::BootLatency boot(boot_median, boot_sigma);
    const absl::Time start = absl::Now();
    ppe::Print(policy, replay(boot), oracle);
    std::fprintf(stderr, "%s: %.1f s\n", policy, absl::ToDoubleSeconds(absl::Now() - start));
  };
  using Mode = ppe::scaler::Scaler::Mode;
  run("allocate on query, 1 min keep-alive",
      [&](auto& b) { return ppe::AllocateOnQuery(s, b, 1); });
  run("fixed keep-alive, 10 min", [&](auto& b) { return ppe::AllocateOnQuery(s, b, 10); });
  run("hybrid histogram", [&](auto& b) { return ppe::HybridHistogram(s, b); });
  run("PPE scaler, reactive mode", [&](auto& b) { return ppe::Ppe(s, b, Mode::kReactive); });
  run("PPE scaler, predictive", [&](auto& b) { return ppe::Ppe(s, b, Mode::kPredictive); });
  return 0;
}
