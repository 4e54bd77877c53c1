#include "ppe-service/replay/ppe_policy.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/lifecycle/janitor.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/replay/simulated_hypervisor.h"
#include "ppe-service/scaler/demand_tracker.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/vm/address_pool.h"
#include "ppe-service/vm/vm_manager.h"

namespace ppe::replay {
namespace {

constexpr char kService[] = "replay";

// The VMs of one profile as the replay sees them.
struct Tracked {
  std::map<std::string, size_t> live;  // VMs not released: name -> position in vms
  std::vector<SimVm> vms;
};

}  // namespace

PpeScores RunPpe(const Setup& s, const PpeKnobs& knobs) {
  // Midnight UTC, so that buckets line up with days.
  const absl::Time t0 = absl::FromUnixSeconds(1'700'000'000 / 86400 * 86400);
  store::MemoryRegistryStore store;
  registry::Registry registry(store);
  if (!registry.Load().ok()) std::abort();
  SimulatedHypervisor hypervisor(BootLatency(s.boot_median, s.boot_sigma));
  auto pool = std::make_shared<vm::AddressPool>(*vm::AddressPool::Create("10.0.0.0/8"));
  // One worker: the scale-ups of a tick run in the order they were scheduled,
  // so every run draws the same boot latency for the same VM.
  ThreadPool workers(1);
  ManualClock clock(t0);
  vm::ServicePlacement placement;
  placement.service = kService;
  placement.shape.name = "cpu-heavy";
  placement.addresses = pool;
  const size_t unlimited = 1u << 30;
  vm::VmManager vms(hypervisor, registry, {placement}, workers, clock,
                    {.max_vms_per_profile = unlimited,
                     .max_vms_total = static_cast<size_t>(std::max(1, s.budget))});
  int64_t created = 0;  // names in creation order: ties between spares break the same way each run
  vms.set_name_suffix([&created] { return absl::StrFormat("%010d", ++created); });
  lifecycle::Janitor janitor(
      registry, vms, clock,
      {.idle_expiry = absl::Hours(24 * 365 * 100), .drain = absl::Seconds(60)});
  scaler::DemandTracker demand;
  scaler::Scaler::Options options;
  options.mode = knobs.mode;
  options.bucket = absl::Seconds(s.bucket_seconds);
  options.lead_buffer = absl::Seconds(s.BootP90());
  options.level = knobs.level;
  options.cooldown = std::max(1, knobs.cooldown);
  options.periods = s.periods;
  options.max_vms = static_cast<int>(unlimited);
  options.budget = s.budget;
  options.drain = absl::Seconds(60);
  options.requests_per_vm[kService] = s.per_vm();
  options.adaptive_spares = s.adaptive_spares;
  options.pool_sparse = s.pool_sparse;
  scaler::Scaler scaler(registry, vms, demand, workers, clock, options);

  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < s.profiles.size(); ++i) {
    const Profile& p = s.profiles[i];
    if (!registry.RegisterProfile(p.name, {.service_tier = p.tier}, "admin", t0).ok()) std::abort();
    by_name[p.name] = i;
  }
  std::vector<Tracked> tracked(s.profiles.size());
  Tracked spares;  // the service's warm spares, owned by no profile yet
  const Profile no_demand{.name = "", .demand = std::vector<double>(s.buckets(), 0.0)};
  PpeScores scores{.profiles = std::vector<Score>(s.profiles.size()), .spares = {}};
  // The registry's VMs at the start of a bucket: new ones serve from their
  // creation plus their boot latency; draining ones stopped serving at the
  // tick that drained them; released ones stopped costing at the janitor's.
  // A spare a profile took over stops costing as a spare and starts costing
  // as the profile's, now, with the readiness it already had.
  auto sync = [&](double now) {
    std::map<std::string, bool> present;
    for (const registry::VmRecord& vm : registry.ListVms()) {
      auto p = by_name.find(vm.cpt);
      if (p == by_name.end() && !vm.cpt.empty()) continue;
      Tracked& tr = p == by_name.end() ? spares : tracked[p->second];
      present[vm.name] = true;
      auto [it, fresh] = tr.live.try_emplace(vm.name, tr.vms.size());
      if (fresh) {
        const double c = absl::ToDoubleSeconds(vm.created - t0);
        SimVm v{c, c + hypervisor.BootSeconds(vm.name)};
        if (auto was = spares.live.find(vm.name); &tr != &spares && was != spares.live.end()) {
          SimVm& spare = spares.vms[was->second];
          spare.released = spare.serve_end = now;
          spare.handed_over = true;
          spares.live.erase(was);
          v.created = now;
          v.taken_over = true;
        }
        tr.vms.push_back(v);
      }
      SimVm& v = tr.vms[it->second];
      if (vm.state == registry::VmState::kDraining && std::isinf(v.serve_end)) v.serve_end = now;
    }
    auto released = [&](Tracked& tr) {
      for (auto it = tr.live.begin(); it != tr.live.end();) {
        if (present.count(it->first)) {
          ++it;
          continue;
        }
        SimVm& v = tr.vms[it->second];  // gone from the registry: released
        v.released = now;
        v.serve_end = std::min(v.serve_end, now);
        it = tr.live.erase(it);
      }
    };
    for (Tracked& tr : tracked) released(tr);
    released(spares);
  };
  // Every task on the one worker has run: a marker behind what is queued,
  // twice, since a task may queue another (a claimed spare's refill).
  auto settle = [&workers] {
    for (int round = 0; round < 2; ++round) {
      absl::Notification done;
      workers.Schedule([&done] { done.Notify(); });
      done.WaitForNotification();
    }
  };
  for (int t = 0; t < s.buckets(); ++t) {
    for (const Profile& p : s.profiles) {
      const int64_t n = std::llround(p.demand[t]);
      if (n > 0) demand.Record(p.name, kService, n);
    }
    // The resolver: a profile's request that finds no ready VM allocates one
    // (EnsureVm, as ResolverEngine::AnswerProfile does), at the bucket's start.
    std::vector<absl::Notification> allocated(s.profiles.size());
    std::vector<size_t> waiting;
    for (size_t i = 0; i < s.profiles.size(); ++i) {
      const Profile& p = s.profiles[i];
      if (p.demand[t] <= 0 || !registry.ReadyAddresses(p.name, kService, clock.Now()).empty()) {
        continue;
      }
      waiting.push_back(i);
      vms.EnsureVm(p.name, kService, std::nullopt,
                   [&allocated, i](absl::StatusOr<std::string>) { allocated[i].Notify(); });
    }
    for (size_t i : waiting) allocated[i].WaitForNotification();
    settle();
    sync(t * s.bucket_seconds);
    for (size_t i = 0; i < s.profiles.size(); ++i) {
      ScoreBucket(s, s.profiles[i], t, tracked[i].vms, scores.profiles[i]);
    }
    ScoreBucket(s, no_demand, t, spares.vms, scores.spares);
    clock.Advance(absl::Seconds(s.bucket_seconds));
    scaler.Tick();
    settle();
    janitor.Tick();
  }
  return scores;
}

}  // namespace ppe::replay
