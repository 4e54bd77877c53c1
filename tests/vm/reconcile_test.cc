// Restart behaviour against real libvirt (test:///default): the registry is the
// desired state and Reconcile makes the hypervisor match it.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ppe-service/vm/libvirt_hypervisor.h"
#include "ppe-service/vm/vm_manager.h"
#include "tests/fixtures/registry_fixture.h"

namespace ppe::vm {
namespace {

// A registry over which each test starts managers, as restarts do.
struct World : testing::RegistryFixture {
  explicit World(Hypervisor& hv) : hv(hv) {}
  std::unique_ptr<VmManager> Manager(ThreadPool& workers, const Clock& clock) {
    pool = std::make_shared<AddressPool>(*AddressPool::Create("192.168.122.64/26"));
    return std::make_unique<VmManager>(
        hv, registry,
        std::vector<ServicePlacement>{{"video", {"cpu-heavy", 1, 1, 256, 256}, "", pool}}, workers,
        clock);
  }
  std::string Allocate(VmManager& vms, const std::string& cpt) {
    absl::StatusOr<std::string> ip;
    absl::Notification done;
    vms.EnsureVm(cpt, "video", VmManager::Registration{}, [&](absl::StatusOr<std::string> r) {
      ip = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    REQUIRE(ip.ok());
    return *ip;
  }
  int Domains() {
    int n = 0;
    absl::StatusOr<std::vector<DomainInfo>> domains = hv.List();
    for (const auto& d : *domains) n += d.tag && d.tag->registry == registry.instance_id();
    return n;
  }

  Hypervisor& hv;
  std::shared_ptr<AddressPool> pool;
};

TEST_CASE("reconcile: adopt running, restore missing, destroy orphans, keep addresses",
          "[integration]") {
  auto hv = LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  World w(**hv);
  ThreadPool workers(2);
  auto vms = w.Manager(workers, WallClock::Instance());
  std::string ip1 = w.Allocate(*vms, "cpt-a");
  std::string ip2 = w.Allocate(*vms, "cpt-b");
  std::string ip3 = w.Allocate(*vms, "cpt-c");
  REQUIRE(w.Domains() == 3);

  // The hypervisor lost one domain; another domain is tagged by us but unknown.
  std::string lost = w.registry.ListVms("cpt-b")[0].name;
  REQUIRE((*hv)->Destroy(lost).ok());
  DomainSpec orphan{.name = "ppe-video-orphan",
                    .tag = {.profile = "x",
                            .service = "video",
                            .ip = "192.168.122.99",
                            .registry = w.registry.instance_id()}};
  REQUIRE((*hv)->Create(orphan).ok());
  DomainSpec foreign{
      .name = "ppe-video-foreign",
      .tag = {
          .profile = "y", .service = "video", .ip = "192.168.122.98", .registry = "someone-else"}};
  REQUIRE((*hv)->Create(foreign).ok());

  // A restart: a new manager (fresh address pool) over the same registry.
  auto restarted = w.Manager(workers, WallClock::Instance());
  auto report = restarted->Reconcile();
  REQUIRE(report.ok());
  CHECK(report->adopted == 2);
  CHECK(report->restored == 1);
  CHECK(report->orphans_destroyed == 1);
  CHECK(report->failed == 0);
  CHECK(w.Domains() == 3);
  CHECK(w.registry.VmCount() == 3);
  CHECK(w.registry.ReadyAddresses("cpt-b", "video", absl::Now()) == std::vector<std::string>{ip2});
  // The pool knows the leases: a new VM gets a new address.
  std::string ip4 = w.Allocate(*restarted, "cpt-d");
  CHECK(ip4 != ip1);
  CHECK(ip4 != ip2);
  CHECK(ip4 != ip3);
  // The foreign domain was left alone.
  bool foreign_alive = false;
  absl::StatusOr<std::vector<DomainInfo>> domains = (*hv)->List();
  for (const auto& d : *domains) foreign_alive |= d.name == "ppe-video-foreign";
  CHECK(foreign_alive);
  REQUIRE((*hv)->Destroy("ppe-video-foreign").ok());
  for (const auto& vm : w.registry.ListVms()) REQUIRE(restarted->ReleaseVm(vm.name).ok());
  CHECK(w.Domains() == 0);
  CHECK(w.pool->in_use() == 0);
}

// The real hypervisor, counting how many Creates run at once; each is held
// 20 ms so that overlapping ones are seen.
class ConcurrencyCounter : public Hypervisor {
 public:
  explicit ConcurrencyCounter(Hypervisor& real) : real_(real) {}
  HypervisorCapabilities capabilities() const override { return real_.capabilities(); }
  absl::Status Create(const DomainSpec& spec) override {
    int now = ++running_;
    for (int m = max_.load(); now > m && !max_.compare_exchange_weak(m, now);) {
    }
    absl::SleepFor(absl::Milliseconds(20));
    absl::Status s = real_.Create(spec);
    --running_;
    return s;
  }
  absl::Status Destroy(absl::string_view name) override { return real_.Destroy(name); }
  absl::StatusOr<std::vector<DomainInfo>> List() override { return real_.List(); }
  absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) override {
    return real_.Resize(name, vcpus, memory_mib);
  }
  int max_concurrent() const { return max_.load(); }
  void Reset() { max_ = 0; }

 private:
  Hypervisor& real_;
  std::atomic<int> running_{0}, max_{0};
};

TEST_CASE("reconcile: missing domains are restored in parallel, bounded by the pool",
          "[integration]") {
  auto real = LibvirtHypervisor::Open("test:///default");
  REQUIRE(real.ok());
  ConcurrencyCounter counter(**real);
  World w(counter);
  ThreadPool workers(4);
  auto vms = w.Manager(workers, WallClock::Instance());
  std::map<std::string, std::string> ip_of;  // VM name -> address
  for (int i = 0; i < 40; ++i) w.Allocate(*vms, absl::StrCat("cpt-", i));
  for (const auto& vm : w.registry.ListVms()) ip_of[vm.name] = vm.ip;
  REQUIRE(ip_of.size() == 40);
  // The hypervisor lost every domain (test:/// after a restart).
  for (const auto& [name, ip] : ip_of) REQUIRE(counter.Destroy(name).ok());
  REQUIRE(w.Domains() == 0);

  counter.Reset();
  auto restarted = w.Manager(workers, WallClock::Instance());
  auto report = restarted->Reconcile();
  REQUIRE(report.ok());
  CHECK(counter.max_concurrent() > 1);   // in parallel
  CHECK(counter.max_concurrent() <= 4);  // at most one per worker thread
  CHECK(report->restored == 40);
  CHECK(report->adopted == 0);
  CHECK(report->failed == 0);
  CHECK(w.Domains() == 40);
  for (const auto& vm : w.registry.ListVms()) {
    CHECK(ip_of[vm.name] == vm.ip);
    CHECK(vm.state == registry::VmState::kReady);
  }
  for (const auto& vm : w.registry.ListVms()) REQUIRE(restarted->ReleaseVm(vm.name).ok());
  CHECK(w.Domains() == 0);
}

}  // namespace
}  // namespace ppe::vm
