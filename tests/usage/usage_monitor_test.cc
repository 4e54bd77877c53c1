// The usage monitor's idle and busy logic on a manual clock, with usage
// counters set by the test on tests/mocks/fake_hypervisor.h (a FAKE: nothing
// is measured). Registry, VM manager and scaler are the real ones. Real
// counters: usage_testdriver_test.cc (test:///) and usage_lxc_test.py (LXC).
#include "ppe-service/vm/usage_monitor.h"

#include <algorithm>

#include <catch2/catch.hpp>

#include "ppe-service/config/config_loader.h"
#include "ppe-service/scaler/scaler.h"
#include "ppe-service/store/memory_registry_store.h"
#include "tests/mocks/fake_hypervisor.h"

namespace ppe::vm {
namespace {

constexpr absl::Duration kPoll = absl::Seconds(10);

UsageMonitor::Options TestOptions(UsageMonitor::Mode mode = UsageMonitor::Mode::kAct) {
  return {.mode = mode,
          .poll_interval = kPoll,
          .idle_cpu_percent = 2,
          .idle_network_bytes_per_s = 10,
          .idle_period = absl::Seconds(60),
          .busy_cpu_percent = 80,
          .busy_period = absl::Seconds(30),
          .drain = absl::Seconds(20)};
}

struct World {
  explicit World(UsageMonitor::Options options = TestOptions(), size_t warm_spares = 0)
      : registry(store),
        pool(std::make_shared<AddressPool>(*AddressPool::Create("10.9.0.0/24"))),
        workers(2),
        clock(absl::FromUnixSeconds(1'000'000)),
        vms(hypervisor, registry,
            {{.service = "video",
              .shape = {"small", 1, 1, 256, 256},
              .addresses = pool,
              .warm_spares = warm_spares}},
            workers, clock, {.max_vms_per_profile = 8}),
        monitor(hypervisor, registry, vms, clock, options) {
    REQUIRE(registry.Load().ok());
  }

  std::string AddVm(const std::string& cpt) {
    if (!registry.IsActive(cpt)) {
      REQUIRE(registry.RegisterProfile(cpt, {}, "admin", clock.Now()).ok());
    }
    std::vector<registry::VmRecord> before = registry.ListVms(cpt);
    REQUIRE(vms.AddVm(cpt, "video").ok());
    for (const registry::VmRecord& vm : registry.ListVms(cpt)) {
      if (std::none_of(before.begin(), before.end(),
                       [&](const registry::VmRecord& b) { return b.name == vm.name; })) {
        return vm.name;
      }
    }
    FAIL("AddVm added no VM");
    return "";
  }
  registry::VmState StateOf(const std::string& name) { return registry.GetVm(name)->state; }
  // One poll interval: each VM's usage over it, then a poll.
  UsageMonitor::Report Step(const std::map<std::string, std::pair<double, uint64_t>>& usage) {
    for (const auto& [name, u] : usage) {
      hypervisor.AddUsage(name, absl::Seconds(u.first), u.second / 2, u.second - u.second / 2);
    }
    clock.Advance(kPoll);
    absl::StatusOr<UsageMonitor::Report> r = monitor.Poll();
    REQUIRE(r.ok());
    return *r;
  }

  store::MemoryRegistryStore store;
  registry::Registry registry;
  testing::FakeHypervisor hypervisor;
  std::shared_ptr<AddressPool> pool;
  ThreadPool workers;
  ManualClock clock;
  VmManager vms;
  UsageMonitor monitor;
};

TEST_CASE("an idle VM is drained after the idle period, one with traffic is not") {
  World w;
  const std::string quiet = w.AddVm("cpt-quiet");
  const std::string used = w.AddVm("cpt-used");
  w.hypervisor.AddUsage(quiet, absl::ZeroDuration(), 0, 0);
  w.hypervisor.AddUsage(used, absl::ZeroDuration(), 0, 0);
  REQUIRE(w.monitor.Poll()->unmeasured == 2);  // a first sample measures nothing
  // 0.1% CPU and no bytes vs 0.5% CPU and 2 kB per 10 s (200 B/s).
  const std::map<std::string, std::pair<double, uint64_t>> usage = {{quiet, {0.01, 0}},
                                                                    {used, {0.05, 2000}}};
  for (int i = 0; i < 5; ++i) {  // 50 s: below the 60 s idle period
    UsageMonitor::Report r = w.Step(usage);
    CHECK(r.measured == 2);
    CHECK(r.drained == 0);
  }
  CHECK(w.monitor.Pool("cpt-quiet", "video").idle == 0);
  UsageMonitor::Report r = w.Step(usage);  // 60 s quiet
  CHECK(r.idle == 1);
  CHECK(r.drained == 1);
  CHECK(w.StateOf(quiet) == registry::VmState::kDraining);
  CHECK(w.registry.GetVm(quiet)->release_after == w.clock.Now() + absl::Seconds(20));
  CHECK(w.StateOf(used) == registry::VmState::kReady);
  PoolUsage pu = w.monitor.Pool("cpt-quiet", "video");
  CHECK(pu.idle_released == w.clock.Now());
  CHECK(pu.idle == 0);
  auto services = w.monitor.ByService();
  CHECK(services["video"].idle_releases == 1);
  CHECK(services["video"].cpu_seconds == Approx(6 * 0.06));
  CHECK(services["video"].rx_bytes + services["video"].tx_bytes == 6 * 2000);
  // The draining VM is no longer measured, nor drained again.
  r = w.Step(usage);
  CHECK(r.measured == 1);
  CHECK(r.drained == 0);
}

TEST_CASE("a burst of traffic or CPU restarts the idle clock") {
  World w;
  const std::string vm = w.AddVm("cpt");
  w.hypervisor.AddUsage(vm, absl::ZeroDuration(), 0, 0);
  REQUIRE(w.monitor.Poll().ok());
  for (int i = 0; i < 3; ++i) w.Step({{vm, {0, 0}}});
  w.Step({{vm, {0, 40}}});                        // an ARP broadcast: within 10 B/s x 60 s
  CHECK(w.Step({{vm, {0, 0}}}).drained == 0);     // quiet for 50 s
  CHECK(w.Step({{vm, {0, 1000}}}).drained == 0);  // a few requests: over the 600-byte budget
  for (int i = 0; i < 5; ++i) CHECK(w.Step({{vm, {0, 0}}}).drained == 0);
  w.Step({{vm, {0.5, 0}}});  // 5% CPU
  for (int i = 0; i < 5; ++i) CHECK(w.Step({{vm, {0, 0}}}).drained == 0);
  CHECK(w.Step({{vm, {0, 0}}}).drained == 1);  // 60 s after the CPU burst
}

TEST_CASE("idle drains keep the pool's min_vms and never touch warm spares") {
  World w(TestOptions(), /*warm_spares=*/1);
  w.monitor.set_min_vms(
      [](const std::string& cpt, const std::string&) { return cpt == "cpt-keep" ? 1 : 0; });
  const std::string kept = w.AddVm("cpt-keep");
  const std::string a = w.AddVm("cpt-two");
  const std::string b = w.AddVm("cpt-two");
  std::string spare;
  for (int i = 0; i < 2000 && spare.empty(); ++i) {
    w.vms.RefillSpares();  // AddVm may have claimed the first spare
    for (const registry::VmRecord& vm : w.registry.ListVms()) {
      if (vm.cpt.empty() && vm.state == registry::VmState::kReady) spare = vm.name;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  REQUIRE(!spare.empty());
  for (const std::string& name : {kept, a, b, spare}) {
    w.hypervisor.AddUsage(name, absl::ZeroDuration(), 0, 0);
  }
  REQUIRE(w.monitor.Poll().ok());
  int drained = 0;
  for (int i = 0; i < 6; ++i) drained += w.Step({}).drained;
  CHECK(drained == 2);  // both of cpt-two's VMs
  CHECK(w.StateOf(a) == registry::VmState::kDraining);
  CHECK(w.StateOf(b) == registry::VmState::kDraining);
  CHECK(w.StateOf(kept) == registry::VmState::kReady);   // min_vms 1
  CHECK(w.StateOf(spare) == registry::VmState::kReady);  // a spare is nobody's pool
  CHECK(w.monitor.ByService()["video"].idle == 2);       // kept and the spare: idle, kept
}

TEST_CASE("a busy VM signals its pool after the busy period, the pool growing restarts it") {
  World w;
  const std::string first = w.AddVm("cpt");
  w.hypervisor.AddUsage(first, absl::ZeroDuration(), 0, 0);
  REQUIRE(w.monitor.Poll().ok());
  const std::pair<double, uint64_t> hot{9, 100000};  // 90% of its one vCPU
  for (int i = 0; i < 2; ++i) {
    w.Step({{first, hot}});
    CHECK(w.monitor.Pool("cpt", "video").busy == 0);  // 20 s < 30 s
  }
  w.Step({{first, hot}});
  PoolUsage pu = w.monitor.Pool("cpt", "video");
  CHECK(pu.busy == 1);
  CHECK(pu.measured == 1);
  CHECK(w.monitor.ByService()["video"].busy == 1);
  // The scaler adds a VM: the busy clock starts again.
  const std::string second = w.AddVm("cpt");
  w.hypervisor.AddUsage(second, absl::ZeroDuration(), 0, 0);
  w.Step({{first, hot}, {second, {0.1, 1000}}});
  CHECK(w.monitor.Pool("cpt", "video").busy == 0);
  w.Step({{first, hot}, {second, {0.1, 1000}}});
  w.Step({{first, hot}, {second, {0.1, 1000}}});
  CHECK(w.monitor.Pool("cpt", "video").busy == 0);
  w.Step({{first, hot}, {second, {0.1, 1000}}});
  pu = w.monitor.Pool("cpt", "video");
  CHECK(pu.busy == 1);
  CHECK(pu.measured == 2);
  // Its idle sibling is kept while the pool is busy, drained once it is not.
  for (int i = 0; i < 7; ++i) CHECK(w.Step({{first, hot}, {second, {0, 0}}}).drained == 0);
  CHECK(w.monitor.Pool("cpt", "video").idle == 1);
  CHECK(w.Step({{first, {0.5, 1000}}, {second, {0, 0}}}).drained == 1);
  CHECK(w.StateOf(second) == registry::VmState::kDraining);
  CHECK(w.StateOf(first) == registry::VmState::kReady);
}

TEST_CASE("CPU is a share of the VM vCPUs, a counter that goes back restarts measuring") {
  World w;
  const std::string vm = w.AddVm("cpt");
  w.hypervisor.SetStats(vm, {.cpu_time_ns = 0, .vcpus = 2, .rx_bytes = 0, .tx_bytes = 0});
  REQUIRE(w.monitor.Poll().ok());
  for (int i = 0; i < 5; ++i) w.Step({{vm, {9, 1000}}});  // 45% of two vCPUs
  CHECK(w.monitor.Pool("cpt", "video").busy == 0);
  for (int i = 0; i < 4; ++i) w.Step({{vm, {18, 1000}}});  // 90%
  CHECK(w.monitor.Pool("cpt", "video").busy == 1);
  // Re-created (counters from zero): unmeasured for one poll, then busy anew.
  w.hypervisor.SetStats(vm, {.cpu_time_ns = 0, .vcpus = 2, .rx_bytes = 0, .tx_bytes = 0});
  UsageMonitor::Report r = w.Step({});
  CHECK(r.unmeasured == 1);
  CHECK(w.monitor.Pool("cpt", "video").busy == 0);
}

TEST_CASE("no CPU figures (as libvirt's test driver): VMs stay unmeasured, nothing drained") {
  World w;
  const std::string vm = w.AddVm("cpt");  // the fake reports only its name
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<UsageMonitor::Report> r = w.monitor.Poll();
    REQUIRE(r.ok());
    CHECK(r->unmeasured == 1);
    CHECK(r->drained == 0);
    w.clock.Advance(kPoll);
  }
  CHECK(w.StateOf(vm) == registry::VmState::kReady);
  // No network counters but CPU: busy can be measured, idle cannot.
  w.hypervisor.SetStats(vm, {.cpu_time_ns = 0, .vcpus = 1});
  REQUIRE(w.monitor.Poll().ok());
  for (int i = 0; i < 10; ++i) {
    w.hypervisor.SetStats(vm, {.cpu_time_ns = 0, .vcpus = 1});  // no CPU used either
    w.clock.Advance(kPoll);
    CHECK(w.monitor.Poll()->drained == 0);
  }
  CHECK(w.StateOf(vm) == registry::VmState::kReady);
}

TEST_CASE("observe mode measures and drains nothing, a failed poll is counted") {
  World w(TestOptions(UsageMonitor::Mode::kObserve));
  const std::string vm = w.AddVm("cpt");
  w.hypervisor.AddUsage(vm, absl::ZeroDuration(), 0, 0);
  REQUIRE(w.monitor.Poll().ok());
  for (int i = 0; i < 10; ++i) CHECK(w.Step({}).drained == 0);
  CHECK(w.monitor.Pool("cpt", "video").idle == 1);
  CHECK(w.StateOf(vm) == registry::VmState::kReady);
  w.hypervisor.fail_stats = true;
  CHECK(absl::IsUnavailable(w.monitor.Poll().status()));
  UsageMonitor::PollStats ps = w.monitor.poll_stats();
  CHECK(ps.polls == 12);
  CHECK(ps.errors == 1);
}

TEST_CASE("the scaler: busy VMs scale a pool up, an idle release holds until demand returns") {
  World w;
  scaler::DemandTracker demand;
  scaler::Scaler scaler(w.registry, w.vms, demand, w.workers, w.clock,
                        {.mode = scaler::Scaler::Mode::kReactive,
                         .bucket = kPoll,
                         .cooldown = 100,
                         .keep_warm = 100,
                         .max_vms = 4,
                         .requests_per_vm = {{"video", 1000}}});
  scaler.set_usage_signal(&w.monitor);
  w.monitor.set_min_vms([&scaler](const std::string& cpt, const std::string& svc) {
    return scaler.MinVms(cpt, svc);
  });
  auto active = [&] {
    int n = 0;
    for (const registry::VmRecord& vm : w.registry.ListVms("cpt")) {
      n += vm.state == registry::VmState::kReady;
    }
    return n;
  };
  auto tick = [&](int requests) {
    for (int i = 0; i < requests; ++i) demand.Record("cpt", "video");
    scaler.Tick();
    // The scale-ups run on the workers: until each is ready and its task has
    // ended. A task's VM is ready a moment before the task is off the
    // scaler's pending count; a tick in between would count it twice.
    for (int i = 0; i < 2000; ++i) {
      auto v = scaler.Describe("cpt", "video");
      std::vector<registry::VmRecord> vms = w.registry.ListVms("cpt");
      bool starting = std::any_of(vms.begin(), vms.end(), [](const registry::VmRecord& vm) {
        return vm.state == registry::VmState::kProvisioning ||
               vm.state == registry::VmState::kBooting;
      });
      if (!v.ok() || (v->current >= v->desired && v->pending == 0 && !starting)) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
  };
  const std::string first = w.AddVm("cpt");
  w.hypervisor.AddUsage(first, absl::ZeroDuration(), 0, 0);
  REQUIRE(w.monitor.Poll().ok());
  tick(10);  // 10 requests: the forecast wants 1 VM
  CHECK(active() == 1);
  for (int i = 0; i < 3; ++i) {
    w.Step({{first, {9.5, 50000}}});
    tick(10);
  }
  CHECK(w.monitor.Pool("cpt", "video").busy == 1);
  CHECK(active() == 2);  // the busy signal, not the 10 requests
  CHECK(scaler.stats().busy_signals >= 1);

  // Both go quiet, no DNS demand: both drained (min_vms 0), and the scaler's
  // keep-warm floor does not bring one back.
  std::vector<registry::VmRecord> vms = w.registry.ListVms("cpt");
  for (int i = 0; i < 8; ++i) {
    std::map<std::string, std::pair<double, uint64_t>> quiet;
    for (const auto& vm : vms) quiet[vm.name] = {0, 0};
    w.Step(quiet);
    tick(0);
  }
  CHECK(active() == 0);
  CHECK(w.monitor.ByService()["video"].idle_releases == 2);
  tick(0);
  CHECK(active() == 0);
  // Demand counted after the release: the scaler provisions again.
  w.clock.Advance(kPoll);
  tick(10);
  CHECK(active() == 1);
}

TEST_CASE("usage config: defaults, and bad values refused with the field named") {
  const std::string base = R"(
workload_classes { name: "small" }
zones { name: "cdn.example.test" nameservers: "ns1.cdn.example.test"
  services { name: "video" workload_class: "small" address_pool: "10.9.0.0/24" fallback_addresses: "192.0.2.1" } }
)";
  auto c = config::ParsePpeConfig(base, "t.conf");
  REQUIRE(c.ok());
  CHECK(c->usage().mode() == ppe::config::v1::Usage::ACT);
  CHECK(c->usage().poll_interval_s() == 10);
  CHECK(c->usage().idle_cpu_percent() == 2);
  CHECK(c->usage().idle_period_s() == 600);
  CHECK(c->usage().busy_cpu_percent() == 80);
  CHECK(c->usage().busy_period_s() == 60);
  CHECK(c->usage().idle_network_bytes_per_s() == 50);
  auto error = [&](const std::string& usage) {
    auto r = config::ParsePpeConfig(base + "usage { " + usage + " }", "t.conf");
    return r.ok() ? std::string() : std::string(r.status().message());
  };
  CHECK(error("mode: \"sometimes\"").find("usage.mode") != std::string::npos);
  CHECK(error("mode: \"observe\"")
            .find("usage.mode is an enum, written without quotes: "
                  "mode: OBSERVE") != std::string::npos);
  CHECK(error("busy_cpu_percent: 150").find("usage.busy_cpu_percent") != std::string::npos);
  CHECK(error("idle_cpu_percent: 90 busy_cpu_percent: 50").find("usage.idle_cpu_percent") !=
        std::string::npos);
  CHECK(error("poll_interval_s: 30 idle_period_s: 40").find("usage.idle_period_s") !=
        std::string::npos);
  CHECK(error("poll_interval_s: 30 busy_period_s: 30").find("usage.busy_period_s") !=
        std::string::npos);
  CHECK(error("idle_network_bytes_per_s: -1").find("usage.idle_network_bytes_per_s") !=
        std::string::npos);
  CHECK(error("mode: OBSERVE poll_interval_s: 1 idle_period_s: 2 busy_period_s: 2").empty());
}

}  // namespace
}  // namespace ppe::vm
