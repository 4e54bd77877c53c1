// Host loss on real hosts: two private libvirtd daemons (LXC), each with its
// own bridge and /24, set up by run_hosts_test.sh. One daemon is killed
// (kill -9); after the grace period its profiles get containers on the other
// host that answer HTTP; the daemon is restarted and the reconcile destroys
// the stale containers. No address is held by two live containers.
#include <signal.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/vm/libvirt_hypervisor.h"
#include "ppe-service/vm/readiness_probe.h"
#include "ppe-service/vm/vm_manager.h"

namespace ppe::vm {
namespace {

constexpr unsigned kPort = 8080;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) FAIL("run this test through tests/hosts/run_hosts_test.sh (" << name << ")");
  return v;
}

struct RealHost {
  explicit RealHost(const std::string& p)
      : uri(Env((p + "_URI").c_str())),
        run(Env((p + "_RUN").c_str())),
        bridge(Env((p + "_BRIDGE").c_str())),
        net(Env((p + "_NET").c_str())) {}
  std::string uri, run, bridge, net;  // net: "10.213.X"
  pid_t DaemonPid() const {
    std::ifstream in(run + "/libvirtd.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

TEST_CASE("lxc hosts: a killed libvirtd's profiles move, its return destroys the stale ones",
          "[.][lxc-hosts]") {
  RealHost a("PPE_HOSTS_A"), b("PPE_HOSTS_B");
  const std::string setup = Env("PPE_LXC_SETUP");
  auto hv_a = LibvirtHypervisor::Open(a.uri);
  auto hv_b = LibvirtHypervisor::Open(b.uri);
  REQUIRE(hv_a.ok());
  REQUIRE(hv_b.ok());
  auto pool = [](const RealHost& h) {
    return HostPool{.service = "video",
                    .addresses = std::make_shared<AddressPool>(
                        *AddressPool::Create(absl::StrCat(h.net, ".64/26"))),
                    .bridge = h.bridge,
                    .prefix_length = 24};
  };
  std::vector<HostSpec> hosts = {{.name = "a",
                                  .region = "eu-west",
                                  .capacity_vcpus = 8,
                                  .capacity_memory_mib = 2048,
                                  .hypervisor = hv_a->get(),
                                  .pools = {pool(a)}},
                                 {.name = "b",
                                  .region = "us-east",
                                  .capacity_vcpus = 8,
                                  .capacity_memory_mib = 2048,
                                  .hypervisor = hv_b->get(),
                                  .pools = {pool(b)}}};
  RegionDistances distances;
  distances.Set("eu-west", "us-east", 50);
  store::MemoryRegistryStore store;
  registry::Registry registry(store);
  REQUIRE(registry.Load().ok());
  ThreadPool workers(4);
  const absl::Duration grace = absl::Seconds(3);
  VmManager vms(
      std::move(hosts), distances, registry,
      {{.service = "video",
        .shape = {.name = "web",
                  .vcpus = 1,
                  .max_vcpus = 1,
                  .memory_mib = 64,
                  .max_memory_mib = 64,
                  .command = {"/usr/bin/python3", "-m", "http.server", "--bind", "{ip}", "{port}"}},
        .probe_port = kPort}},
      workers, WallClock::Instance(), {.max_vms_per_profile = 4, .max_vms_total = 20},
      {.grace = grace});
  vms.set_readiness_check([](const registry::VmRecord& vm, const ServicePlacement& p) {
    return WaitReady(vm.ip, static_cast<int>(p.probe_port), absl::Now() + absl::Seconds(20),
                     absl::Milliseconds(20));
  });
  REQUIRE(vms.Reconcile().ok());
  auto allocate = [&](const std::string& cpt, const std::string& region) {
    absl::StatusOr<std::string> ip;
    absl::Notification done;
    cpt::Attributes attributes;
    attributes.region = region;
    vms.EnsureVm(cpt, "video", VmManager::Registration{attributes, "admin"},
                 [&](absl::StatusOr<std::string> r) {
                   ip = std::move(r);
                   done.Notify();
                 });
    done.WaitForNotification();
    return ip;
  };
  std::map<std::string, std::string> eu;  // cpt -> address on a
  for (int i = 0; i < 2; ++i) {
    std::string cpt = absl::StrCat("eu-", i);
    absl::StatusOr<std::string> ip = allocate(cpt, "eu-west");
    REQUIRE(ip.ok());
    REQUIRE(ip->rfind(a.net + ".", 0) == 0);
    eu[cpt] = *ip;
  }
  absl::StatusOr<std::string> us = allocate("us-0", "us-east");
  REQUIRE(us.ok());
  REQUIRE(us->rfind(b.net + ".", 0) == 0);
  std::set<std::string> stale_names;
  for (const registry::VmRecord& vm : registry.ListVms()) {
    if (vm.ip.rfind(a.net + ".", 0) == 0) stale_names.insert(vm.name);
  }
  REQUIRE(stale_names.size() == 2);

  // kill -9 host a's libvirtd: its containers keep running without it.
  pid_t pid = a.DaemonPid();
  REQUIRE(pid > 0);
  const absl::Time killed = absl::Now();
  REQUIRE(kill(pid, SIGKILL) == 0);
  absl::Time detected = absl::InfiniteFuture(), moved_at = absl::InfiniteFuture();
  while (absl::Now() - killed < absl::Seconds(60)) {
    VmManager::HostCheckReport r = vms.CheckHosts();
    if (r.down > 0 && detected == absl::InfiniteFuture()) detected = absl::Now();
    bool all_moved = true;
    for (const auto& [cpt, old_ip] : eu) {
      std::vector<std::string> now = registry.ServingAddresses(cpt, "video");
      all_moved &= now.size() == 1 && now[0].rfind(b.net + ".", 0) == 0;
    }
    if (all_moved) {
      moved_at = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  REQUIRE(moved_at != absl::InfiniteFuture());
  CHECK(moved_at - killed >= grace);
  // The moved profiles' new containers answer HTTP on host b's bridge, and the
  // old ones (still running on a, unmanaged) keep their own addresses.
  std::set<std::string> live;
  for (const auto& [cpt, old_ip] : eu) {
    std::string ip = registry.ServingAddresses(cpt, "video").at(0);
    CHECK(WaitReady(ip, kPort, absl::Now() + absl::Seconds(5), absl::Milliseconds(20)).ok());
    CHECK(WaitReady(old_ip, kPort, absl::Now() + absl::Seconds(2), absl::Milliseconds(20)).ok());
    CHECK(live.insert(ip).second);
    CHECK(live.insert(old_ip).second);
  }
  CHECK(live.insert(*us).second);

  // Bring host a's libvirtd back: it re-attaches the containers, and the
  // reconcile of its return destroys them.
  const absl::Time restart = absl::Now();
  std::string cmd = absl::StrCat(setup, " ", a.run, " ", a.bridge, " ", a.net, ".1/24 >/dev/null");
  REQUIRE(std::system(cmd.c_str()) == 0);
  const absl::Duration restart_took = absl::Now() - restart;
  absl::Time returned = absl::InfiniteFuture();
  while (absl::Now() - restart < absl::Seconds(30)) {
    if (vms.CheckHosts().returned > 0) {
      returned = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  REQUIRE(returned != absl::InfiniteFuture());
  absl::StatusOr<std::vector<DomainInfo>> left = (*hv_a)->List();
  REQUIRE(left.ok());
  for (const DomainInfo& d : *left) CHECK_FALSE(stale_names.contains(d.name));
  for (const auto& [cpt, old_ip] : eu) {
    CHECK_FALSE(
        WaitReady(old_ip, kPort, absl::Now() + absl::Milliseconds(500), absl::Milliseconds(50))
            .ok());
  }
  // Host a takes VMs again, from addresses that are free for real now.
  absl::StatusOr<std::string> again = allocate("eu-after", "eu-west");
  REQUIRE(again.ok());
  CHECK(again->rfind(a.net + ".", 0) == 0);
  std::set<std::string> registered;
  for (const registry::VmRecord& vm : registry.ListVms()) CHECK(registered.insert(vm.ip).second);

  std::printf(
      "lxc hosts: host a down noticed %.0f ms after kill -9; its 2 profiles served from host b "
      "%.0f ms after the kill (grace %.0f ms); setup.sh restart %.0f ms; return reconciled "
      "(stale destroyed) %.0f ms after the restart\n",
      Ms(detected - killed), Ms(moved_at - killed), Ms(grace), Ms(restart_took),
      Ms(returned - restart));
  for (const registry::VmRecord& vm : registry.ListVms()) CHECK(vms.ReleaseVm(vm.name).ok());
}

}  // namespace
}  // namespace ppe::vm
