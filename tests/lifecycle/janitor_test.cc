// The janitor against real libvirt (test:///default).
#include "ppe-service/lifecycle/janitor.h"

#include <catch2/catch.hpp>

#include "ppe-service/vm/libvirt_hypervisor.h"
#include "tests/fixtures/registry_fixture.h"

namespace ppe::lifecycle {
namespace {

TEST_CASE("janitor: idle profiles expire, their VMs drain and are released") {
  auto hv = vm::LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  testing::VmFixture w({.pool_cidr = "192.168.122.64/26",
                        .manual_clock = true,
                        .start = absl::Now(),
                        .hypervisor = hv->get()});
  auto domains = [&] {
    int n = 0;
    absl::StatusOr<std::vector<vm::DomainInfo>> list = w.hypervisor.List();
    REQUIRE(list.ok());
    for (const auto& d : *list) n += d.tag && d.tag->registry == w.registry.instance_id();
    return n;
  };
  REQUIRE(w.Allocate("cpt-idle").ok());
  REQUIRE(w.Allocate("cpt-busy").ok());
  Janitor janitor(w.registry, w.vms, w.clock,
                  {.idle_expiry = absl::Minutes(10), .drain = absl::Seconds(60)});
  w.clock.Advance(absl::Minutes(9));
  w.registry.ReadyAddresses("cpt-busy", "video", w.clock.Now());  // busy is seen
  w.clock.Advance(absl::Minutes(2));
  auto r = janitor.Tick();
  CHECK(r.expired == 1);
  CHECK(r.released == 0);  // still draining: clients may hold the address for its TTL
  CHECK_FALSE(w.registry.IsActive("cpt-idle"));
  CHECK(w.registry.IsActive("cpt-busy"));
  CHECK(domains() == 2);
  w.clock.Advance(absl::Seconds(61));
  r = janitor.Tick();
  CHECK(r.released == 1);
  CHECK(r.removed == 1);
  CHECK_FALSE(w.registry.GetProfile("cpt-idle").has_value());
  CHECK(domains() == 1);
  CHECK(w.pool->in_use() == 1);
  for (const auto& vm : w.registry.ListVms()) REQUIRE(w.vms.ReleaseVm(vm.name).ok());
}

}  // namespace
}  // namespace ppe::lifecycle
