// Hypervisor::Stats and the usage monitor against real libvirt: the test
// driver (test:///default, in-process, no daemon). It has
// virConnectGetAllDomainStats but reports only the domain state, so every
// counter is absent and every VM stays unmeasured: nothing is drained on it.
#include <algorithm>

#include <catch2/catch.hpp>

#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/vm/libvirt_hypervisor.h"
#include "ppe-service/vm/usage_monitor.h"

namespace ppe::vm {
namespace {

TEST_CASE("test driver: bulk stats list running domains, with no usage counters", "[testdriver]") {
  auto hv = LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  DomainSpec spec{.name = "usage-stats-1", .tag = {.service = "video", .ip = "10.9.0.2"}};
  REQUIRE((*hv)->Create(spec).ok());
  absl::StatusOr<std::vector<DomainStats>> stats = (*hv)->Stats();
  REQUIRE(stats.ok());
  auto it = std::find_if(stats->begin(), stats->end(),
                         [](const DomainStats& s) { return s.name == "usage-stats-1"; });
  REQUIRE(it != stats->end());
  CHECK_FALSE(it->cpu_time_ns.has_value());
  CHECK_FALSE(it->rx_bytes.has_value());
  // Stopped domains are not listed.
  REQUIRE((*hv)->Destroy("usage-stats-1").ok());
  stats = (*hv)->Stats();
  REQUIRE(stats.ok());
  CHECK(std::none_of(stats->begin(), stats->end(),
                     [](const DomainStats& s) { return s.name == "usage-stats-1"; }));
}

TEST_CASE("test driver: the monitor leaves unmeasured VMs alone", "[testdriver]") {
  auto hv = LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  store::MemoryRegistryStore store;
  registry::Registry registry(store);
  REQUIRE(registry.Load().ok());
  ThreadPool workers(2);
  ManualClock clock(absl::FromUnixSeconds(1'000'000));
  VmManager vms(**hv, registry,
                {{.service = "video",
                  .shape = {"small", 1, 1, 64, 64},
                  .addresses = std::make_shared<AddressPool>(*AddressPool::Create("10.9.1.0/24"))}},
                workers, clock);
  UsageMonitor monitor(**hv, registry, vms, clock,
                       {.poll_interval = absl::Seconds(1),
                        .idle_period = absl::Seconds(2),
                        .busy_period = absl::Seconds(2)});
  REQUIRE(registry.RegisterProfile("cpt-td", {}, "admin", clock.Now()).ok());
  REQUIRE(vms.AddVm("cpt-td", "video").ok());
  const std::string name = registry.ListVms("cpt-td").front().name;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<UsageMonitor::Report> r = monitor.Poll();
    REQUIRE(r.ok());
    CHECK(r->unmeasured == 1);
    CHECK(r->drained == 0);
    clock.Advance(absl::Seconds(1));
  }
  CHECK(registry.GetVm(name)->state == registry::VmState::kReady);
  CHECK(monitor.ByService()["video"].unmeasured == 1);
  REQUIRE(vms.ReleaseVm(name).ok());
}

}  // namespace
}  // namespace ppe::vm
