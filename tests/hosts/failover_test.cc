// Host loss with two (or three) test:/// hosts: a host made unreachable has
// its VMs re-created on another after the grace period, and its stale domains
// are destroyed when it returns; no address is ever held by two live domains.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "tests/hosts/hosts_world.h"

namespace ppe::vm {
namespace {

using testing::World;

RegionDistances Near() {
  RegionDistances d;
  d.Set("eu-west", "us-east", 50);
  return d;
}

// Every address held by a live PPE domain on any host, counted.
std::map<std::string, int> LiveAddresses(World& w) {
  std::map<std::string, int> out;
  for (auto& host : w.hosts) {
    absl::StatusOr<std::vector<DomainInfo>> listed = host->real().List();
    REQUIRE(listed.ok());
    for (const DomainInfo& d : *listed) {
      if (d.tag && d.tag->registry == w.registry.instance_id()) ++out[d.tag->ip];
    }
  }
  return out;
}

void RequireNoAddressTwice(World& w) {
  for (const auto& [ip, n] : LiveAddresses(w)) {
    INFO("address " << ip);
    REQUIRE(n == 1);
  }
  std::set<std::string> registered;
  for (const registry::VmRecord& vm : w.registry.ListVms()) {
    INFO("registry address " << vm.ip);
    REQUIRE(registered.insert(vm.ip).second);
  }
}

TEST_CASE("a lost host's VMs move after the grace period, its return destroys them", "[hosts]") {
  World w({{"a", "eu-west", 0, 0, "10.52.1.0/24"}, {"b", "us-east", 0, 0, "10.52.2.0/24"}}, Near());
  REQUIRE(w.vms->Reconcile().ok());
  std::map<std::string, std::string> before;  // cpt -> address
  for (int i = 0; i < 3; ++i) {
    std::string cpt = absl::StrCat("eu-", i);
    absl::StatusOr<std::string> ip = w.Allocate(cpt, "eu-west");
    REQUIRE(ip.ok());
    CHECK(ip->rfind("10.52.1.", 0) == 0);
    before[cpt] = *ip;
  }
  REQUIRE(w.Allocate("us-0", "us-east").ok());
  REQUIRE(w.Domains(0).size() == 3);
  std::vector<std::string> stale = w.Domains(0);

  w.hosts[0]->down = true;
  VmManager::HostCheckReport r = w.vms->CheckHosts();
  CHECK(r.down == 1);
  CHECK(r.moved == 0);  // within the grace period nothing moves
  CHECK_FALSE(w.Host("a").up);
  // New profiles of eu-west go to the nearest host that is up.
  absl::StatusOr<std::string> fresh = w.Allocate("eu-new", "eu-west");
  REQUIRE(fresh.ok());
  CHECK(fresh->rfind("10.52.2.", 0) == 0);
  w.clock.Advance(absl::Seconds(29));
  CHECK(w.vms->CheckHosts().moved == 0);

  w.clock.Advance(absl::Seconds(2));
  r = w.vms->CheckHosts();
  CHECK(r.moved == 3);
  CHECK(r.stranded == 0);
  for (const auto& [cpt, old_ip] : before) {
    std::vector<std::string> now = w.registry.ServingAddresses(cpt, "video");
    REQUIRE(now.size() == 1);
    CHECK(now[0] != old_ip);
    CHECK(now[0].rfind("10.52.2.", 0) == 0);
  }
  CHECK(w.Host("a").moved_away == 3);
  CHECK(w.Host("a").vms == 0);
  CHECK(w.Host("b").vms == 5);
  // The host really still runs the old domains (it was only unreachable).
  CHECK(w.Domains(0) == stale);
  RequireNoAddressTwice(w);
  // A second round moves nothing more.
  CHECK(w.vms->CheckHosts().moved == 0);

  // The host returns: its stale domains are destroyed, then it takes VMs again.
  w.hosts[0]->down = false;
  r = w.vms->CheckHosts();
  CHECK(r.returned == 1);
  CHECK(w.Domains(0).empty());
  CHECK(w.Host("a").up);
  RequireNoAddressTwice(w);
  absl::StatusOr<std::string> back = w.Allocate("eu-after", "eu-west");
  REQUIRE(back.ok());
  CHECK(back->rfind("10.52.1.", 0) == 0);
  RequireNoAddressTwice(w);
}

TEST_CASE("VMs with nowhere to go stay and move once there is room", "[hosts]") {
  // b takes one 1-vCPU VM only.
  World w({{"a", "eu-west", 0, 0, "10.53.1.0/24"}, {"b", "us-east", 1, 0, "10.53.2.0/24"}}, Near());
  REQUIRE(w.Allocate("eu-0", "eu-west").ok());
  REQUIRE(w.Allocate("eu-1", "eu-west").ok());
  w.hosts[0]->down = true;
  w.vms->CheckHosts();
  w.clock.Advance(absl::Seconds(31));
  VmManager::HostCheckReport r = w.vms->CheckHosts();
  CHECK(r.moved == 1);
  CHECK(r.stranded == 1);
  CHECK(w.vms->placements_nowhere() >= 1);
  CHECK(w.Host("b").used.vcpus == 1);  // never an overcommit
  // The profile that moved frees b (its VM is released): the other one moves next round.
  for (const registry::VmRecord& vm : w.registry.ListVms()) {
    if (vm.ip.rfind("10.53.2.", 0) == 0) REQUIRE(w.vms->ReleaseVm(vm.name).ok());
  }
  r = w.vms->CheckHosts();
  CHECK(r.moved == 1);
  CHECK(w.Host("a").vms == 0);
  RequireNoAddressTwice(w);
  w.hosts[0]->down = false;
  CHECK(w.vms->CheckHosts().returned == 1);
  CHECK(w.Domains(0).empty());
}

TEST_CASE("a VM released while its host is down is destroyed when the host returns", "[hosts]") {
  World w({{"a", "eu-west", 0, 0, "10.54.1.0/24"}, {"b", "us-east", 0, 0, "10.54.2.0/24"}}, Near());
  absl::StatusOr<std::string> ip = w.Allocate("eu-0", "eu-west");
  REQUIRE(ip.ok());
  std::string name = w.registry.ListVms("eu-0").at(0).name;
  w.hosts[0]->down = true;
  w.vms->CheckHosts();
  REQUIRE(w.vms->ReleaseVm(name).ok());  // the janitor is not blocked by the dead host
  CHECK(w.registry.ListVms("eu-0").empty());
  // Its address stays reserved: the same address is not given to anyone while
  // the old domain may still run.
  w.hosts[0]->down = false;
  // Before the host's reconcile, a is still marked down: the next VM goes to b.
  absl::StatusOr<std::string> other = w.Allocate("eu-1", "eu-west");
  REQUIRE(other.ok());
  CHECK(*other != *ip);
  CHECK(w.vms->CheckHosts().returned == 1);
  CHECK(w.Domains(0).empty());
  RequireNoAddressTwice(w);
}

// A second VmManager on the same registry and hosts (hosts "a" in eu-west and
// "b" in us-east, with these address pools), with pools of its own, as a
// replica that is elected after the first leader died has.
std::unique_ptr<VmManager> NextLeader(World& w, const std::vector<std::string>& cidrs) {
  std::vector<HostSpec> specs;
  for (size_t i = 0; i < w.hosts.size(); ++i) {
    specs.push_back(
        {.name = i == 0 ? "a" : "b",
         .region = i == 0 ? "eu-west" : "us-east",
         .hypervisor = w.hosts[i].get(),
         .pools = {{.service = "video",
                    .addresses = std::make_shared<AddressPool>(*AddressPool::Create(cidrs[i]))}}});
  }
  auto next = std::make_unique<VmManager>(
      std::move(specs), Near(), w.registry,
      std::vector<ServicePlacement>{{.service = "video", .shape = {"small", 1, 1, 256, 256}}},
      w.workers, w.clock, VmLimits{.max_vms_per_profile = 100, .max_vms_total = 1000},
      HostOptions{.grace = absl::Seconds(30)});
  next->set_allocation_lock([](const std::string&) -> absl::StatusOr<std::function<void()>> {
    return std::function<void()>([] {});
  });
  return next;
}

TEST_CASE("a move a dead leader began is finished by the next one, not made twice", "[hosts]") {
  World w({{"a", "eu-west", 0, 0, "10.57.1.0/24"}, {"b", "us-east", 0, 0, "10.57.2.0/24"}}, Near());
  std::unique_ptr<VmManager> next = NextLeader(w, {"10.57.1.0/24", "10.57.2.0/24"});
  REQUIRE(w.Allocate("eu-0", "eu-west").ok());
  const registry::VmRecord old = w.registry.ListVms("eu-0").at(0);
  w.hosts[0]->down = true;
  w.vms->CheckHosts();
  CHECK(next->ProbeHosts().down == 1);
  w.clock.Advance(absl::Seconds(31));
  REQUIRE(w.vms->CheckHosts().moved == 1);
  // The first leader died after its replacement VM was ready and before the
  // old record went: both records are there.
  REQUIRE(w.registry.AddVm(old).ok());
  std::vector<registry::VmRecord> vms = w.registry.ListVms("eu-0");
  REQUIRE(vms.size() == 2);
  const registry::VmRecord replacement = vms[0].name == old.name ? vms[1] : vms[0];
  CHECK(replacement.replaces == old.name);

  VmManager::HostCheckReport r = next->CheckHosts();
  CHECK(r.moved == 1);
  vms = w.registry.ListVms("eu-0");
  REQUIRE(vms.size() == 1);  // the old record went; no third VM
  CHECK(vms[0].name == replacement.name);
  CHECK(w.Domains(1).size() == 1);
  CHECK(next->CheckHosts().moved == 0);

  // The host returns: the next leader destroys the old domain.
  w.hosts[0]->down = false;
  r = next->CheckHosts();
  CHECK(r.returned == 1);
  CHECK(w.Domains(0).empty());
  RequireNoAddressTwice(w);
}

TEST_CASE("a leader that did not move them keeps a returning host's undestroyed domains' addresses",
          "[hosts]") {
  // Replicas: the leader that moved a host's VMs died; the new one (here a
  // second VmManager on the same registry and hosts, with pools of its own, as
  // a replica has) never saw those VMs. When the host returns and a stale
  // domain cannot be destroyed, the host stays out of placement (its address
  // would otherwise be handed out again while the old domain still holds it),
  // and is retried next round.
  World w({{"a", "eu-west", 0, 0, "10.56.1.0/24"}, {"b", "us-east", 0, 0, "10.56.2.0/24"}}, Near());
  std::unique_ptr<VmManager> successor = NextLeader(w, {"10.56.1.0/24", "10.56.2.0/24"});
  VmManager& next = *successor;
  REQUIRE(w.Allocate("eu-0", "eu-west").ok());
  REQUIRE(w.Allocate("eu-1", "eu-west").ok());
  const std::vector<std::string> stale = w.Domains(0);
  REQUIRE(stale.size() == 2);
  w.hosts[0]->down = true;
  w.vms->CheckHosts();
  CHECK(next.ProbeHosts().down == 1);
  w.clock.Advance(absl::Seconds(31));
  REQUIRE(w.vms->CheckHosts().moved == 2);  // the old leader moves them, then dies

  w.hosts[0]->down = false;
  w.hosts[0]->refuse_destroy = true;
  VmManager::HostCheckReport r = next.CheckHosts();
  CHECK(r.returned == 0);
  CHECK(r.moved == 0);
  CHECK(w.Domains(0) == stale);
  CHECK_FALSE(next.Hosts()[0].up);
  // A new eu-west profile goes to b, not onto an address a stale domain holds.
  cpt::Attributes eu;
  eu.region = "eu-west";
  REQUIRE(w.registry.RegisterProfile("eu-2", eu, "admin", w.clock.Now()).ok());
  absl::StatusOr<std::string> ip = next.AddVm("eu-2", "video");
  REQUIRE(ip.ok());
  CHECK(ip->rfind("10.56.2.", 0) == 0);
  RequireNoAddressTwice(w);

  w.hosts[0]->refuse_destroy = false;
  r = next.CheckHosts();
  CHECK(r.returned == 1);
  CHECK(w.Domains(0).empty());
  CHECK(next.Hosts()[0].up);
  REQUIRE(w.registry.RegisterProfile("eu-3", eu, "admin", w.clock.Now()).ok());
  ip = next.AddVm("eu-3", "video");
  REQUIRE(ip.ok());
  CHECK(ip->rfind("10.56.1.", 0) == 0);
  RequireNoAddressTwice(w);
}

TEST_CASE("start-up with one host unreachable serves from the others", "[hosts]") {
  World w({{"a", "eu-west", 0, 0, "10.55.1.0/24"}, {"b", "us-east", 0, 0, "10.55.2.0/24"}}, Near());
  w.hosts[0]->down = true;
  absl::StatusOr<VmManager::ReconcileReport> r = w.vms->Reconcile();
  REQUIRE(r.ok());
  CHECK_FALSE(w.Host("a").up);
  absl::StatusOr<std::string> ip = w.Allocate("eu-0", "eu-west");
  REQUIRE(ip.ok());
  CHECK(ip->rfind("10.55.2.", 0) == 0);
  // Both down: the start-up reconcile fails, as with one host.
  w.hosts[1]->down = true;
  CHECK_FALSE(w.vms->Reconcile().ok());
}

}  // namespace
}  // namespace ppe::vm
