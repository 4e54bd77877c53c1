// Every write a leader-run loop makes is fenced: on a real etcd (Debian's
// etcd-server, one member, tests/store/etcd_cluster.h), replica "a" led and
// was replaced by "b" after its lease lapsed; "a" still runs its loops
// (a stall, a partition) inside its old fence. Each case shows that etcd
// refuses what "a" does and takes the same action from "b". The hypervisor is
// tests/mocks/fake_hypervisor.h (a FAKE: instant domains, usage counters set
// by the test); registry, VM manager, scaler, usage monitor and election are
// the real ones.

#include <signal.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "ppe-service/cluster/leader_elector.h"
#include "ppe-service/cluster/replica.h"
#include "ppe-service/scaler/scaler.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe-service/vm/usage_monitor.h"
#include "tests/fixtures/registry_fixture.h"
#include "tests/fixtures/wait_for.h"
#include "tests/store/etcd_fixture.h"

namespace ppe::cluster {
namespace {

using registry::Registry;
using store::testing::EtcdFixture;

// etcd, a store on it, and two candidates: "a" led, then lost its lease to "b".
struct Deposed {
  Deposed() : store(etcd.Connect()) {
    a = Candidate("replica-a");
    b = Candidate("replica-b");
    REQUIRE(a->Campaign(absl::Seconds(10)).ok());
    std::atomic<bool> b_leads{false};
    std::thread campaign([&] { b_leads = b->Campaign(absl::Seconds(20)).ok(); });
    a->StopKeepAlive();  // "a" stalls: etcd expires its lease within the TTL
    campaign.join();
    REQUIRE(b_leads.load());
    REQUIRE(*b->Leader() == "replica-b");
    a_fence = FenceOf(a);
    b_fence = FenceOf(b);
  }
  std::shared_ptr<LeaderElector> Candidate(const std::string& value) {
    LeaderElector::Options options;
    options.endpoints = etcd.cluster->Endpoints();
    options.name = "/ppe/cluster/leader";
    options.value = value;
    options.ttl = absl::Seconds(1);
    auto elector = LeaderElector::Connect(options);
    REQUIRE(elector.ok());
    return std::move(*elector);
  }
  static std::shared_ptr<const Registry::Fence> FenceOf(std::shared_ptr<LeaderElector> e) {
    return std::make_shared<const Registry::Fence>(
        [e](store::Txn txn) { return e->Fence(std::move(txn)); });
  }
  // Whatever `gate` is given to runs inside `fence`, as Replica::leader_gate does
  // for a replica that believes it leads.
  static vm::VmManager::LeaderGate GateOf(std::shared_ptr<const Registry::Fence> fence) {
    return [fence](const std::function<void()>& action) {
      Registry::FenceScope scope(fence);
      action();
      return true;
    };
  }

  EtcdFixture etcd;
  std::unique_ptr<store::EtcdRegistryStore> store;
  std::shared_ptr<LeaderElector> a, b;
  std::shared_ptr<const Registry::Fence> a_fence, b_fence;
};

TEST_CASE("fencing: a deposed leader's scaler neither scales up nor checkpoints",
          "[store][etcd][cluster]") {
  Deposed d;
  testing::VmFixture fx({.manual_clock = true, .durable = d.store.get()});
  scaler::DemandTracker demand;
  scaler::Scaler scaler(fx.registry, fx.vms, demand, fx.workers, fx.clock,
                        {.mode = scaler::Scaler::Mode::kReactive,
                         .bucket = absl::Seconds(1),
                         .checkpoint_every = 1,
                         .max_vms = 4,
                         .requests_per_vm = {{"video", 50}}},
                        d.store.get());
  REQUIRE(fx.registry.RegisterProfile("cpt-1", {}, "admin", fx.clock.Now()).ok());
  auto bucket = [&](const std::shared_ptr<const Registry::Fence>& fence) {
    for (int i = 0; i < 100; ++i) demand.Record("cpt-1", "video");  // two VMs' worth
    fx.clock.Advance(absl::Seconds(1));
    Registry::FenceScope scope(fence);
    scaler.Tick();
    REQUIRE(testing::WaitFor([&] { return scaler.Describe("cpt-1", "video")->pending == 0; }));
  };

  bucket(d.a_fence);
  // The scale-ups ran on the worker pool, the fence went with them.
  CHECK(fx.registry.ListVms("cpt-1").empty());
  CHECK(fx.fake.creates.load() == 0);
  CHECK(d.store->List("/ppe/scaling/demand/")->kvs.empty());
  CHECK(scaler.stats().checkpoint_errors == 1);
  CHECK(fx.registry.fenced_refusals() >= 2);

  bucket(d.b_fence);  // the leader's own: both go through
  CHECK(fx.registry.ListVms("cpt-1").size() == 2);
  CHECK(d.store->List("/ppe/scaling/demand/")->kvs.size() == 1);
  CHECK(scaler.stats().checkpoint_errors == 1);
}

TEST_CASE("fencing: a deposed leader's spare refills, releases, drains and scale-outs are refused",
          "[store][etcd][cluster]") {
  Deposed d;
  testing::VmFixture fx({.shape = {"grows", 1, 2, 256, 512}, .durable = d.store.get()});
  // A VM allocated as any replica does (not a leader write).
  REQUIRE(fx.Allocate("cpt-1").ok());
  fx.vms.SetSpareTarget("video", 1);
  const std::string name = fx.registry.ListVms("cpt-1").at(0).name;
  const int created = fx.fake.creates.load();

  fx.vms.set_leader_gate(Deposed::GateOf(d.a_fence));
  fx.vms.RefillSpares();
  {
    Registry::FenceScope scope(d.a_fence);
    // Release: refused before the domain is destroyed, so the registry and
    // the host still agree.
    CHECK(fx.vms.ReleaseVm(name).code() == absl::StatusCode::kPermissionDenied);
    CHECK(fx.vms.ScaleOut("cpt-1", "video").value_or(-1) == 0);
    CHECK(fx.vms.DrainVm(name, absl::Now()).code() == absl::StatusCode::kPermissionDenied);
  }
  absl::SleepFor(absl::Milliseconds(300));  // the refill's tasks
  CHECK(fx.registry.Spares("video").empty());
  CHECK(fx.fake.creates.load() == created);
  CHECK(fx.fake.resizes.load() == 0);
  CHECK(fx.registry.GetVm(name)->state == registry::VmState::kReady);
  CHECK(fx.fake.List()->size() == 1);

  fx.vms.set_leader_gate(Deposed::GateOf(d.b_fence));
  fx.vms.RefillSpares();
  CHECK(testing::WaitFor([&] { return fx.registry.Spares("video").size() == 1; }));
  Registry::FenceScope scope(d.b_fence);
  CHECK(fx.vms.ScaleOut("cpt-1", "video").value_or(-1) == 1);
  CHECK(fx.vms.ReleaseVm(name).ok());
  CHECK_FALSE(fx.registry.GetVm(name).has_value());
}

// A host that can be made unreachable (wraps the fake).
class Switchable final : public vm::Hypervisor {
 public:
  vm::HypervisorCapabilities capabilities() const override { return {}; }
  absl::Status Create(const vm::DomainSpec& spec) override {
    return down ? Unreachable() : fake.Create(spec);
  }
  absl::Status Destroy(absl::string_view name) override {
    return down ? Unreachable() : fake.Destroy(name);
  }
  absl::StatusOr<std::vector<vm::DomainInfo>> List() override {
    if (down) return Unreachable();
    return fake.List();
  }
  absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) override {
    return down ? Unreachable() : fake.Resize(name, vcpus, memory_mib);
  }
  static absl::Status Unreachable() { return absl::UnavailableError("host down (test)"); }
  testing::FakeHypervisor fake;
  std::atomic<bool> down{false};
};

TEST_CASE("fencing: a deposed leader's host monitor re-creates and destroys nothing",
          "[store][etcd][cluster]") {
  Deposed d;
  Registry registry(*d.store);
  REQUIRE(registry.Load().ok());
  ThreadPool workers(2);
  ManualClock clock(absl::FromUnixSeconds(1700000000));
  Switchable hosts[2];
  std::vector<vm::HostSpec> specs;
  for (int i = 0; i < 2; ++i) {
    specs.push_back(
        {.name = i == 0 ? "eu" : "us",
         .region = i == 0 ? "eu-west" : "us-east",
         .hypervisor = &hosts[i],
         .pools = {{.service = "video",
                    .addresses = std::make_shared<vm::AddressPool>(
                        *vm::AddressPool::Create(i == 0 ? "10.1.0.0/24" : "10.2.0.0/24"))}}});
  }
  vm::RegionDistances distances;
  distances.Set("eu-west", "us-east", 10);
  vm::VmManager vms(std::move(specs), std::move(distances), registry,
                    {{.service = "video", .shape = {"small", 1, 1, 256, 256}}}, workers, clock,
                    {.max_vms_per_profile = 4, .max_vms_total = 100}, {.grace = absl::Seconds(5)});
  absl::Notification done;
  absl::StatusOr<std::string> ip;
  cpt::Attributes eu;
  eu.region = "eu-west";
  vms.EnsureVm("cpt-1", "video", vm::VmManager::Registration{eu, "admin"},
               [&](absl::StatusOr<std::string> r) {
                 ip = std::move(r);
                 done.Notify();
               });
  done.WaitForNotification();
  REQUIRE(ip.ok());
  REQUIRE(absl::StartsWith(*ip, "10.1.0."));

  hosts[0].down = true;
  vms.CheckHosts();  // marked down (no fence needed to notice)
  clock.Advance(absl::Seconds(6));
  {
    Registry::FenceScope scope(d.a_fence);
    vm::VmManager::HostCheckReport r = vms.CheckHosts();
    CHECK(r.moved == 0);
    CHECK(r.stranded == 1);
  }
  CHECK(hosts[1].fake.creates.load() == 0);
  CHECK(registry.ReadyAddresses("cpt-1", "video", clock.Now()) == std::vector<std::string>{*ip});

  {
    Registry::FenceScope scope(d.b_fence);
    CHECK(vms.CheckHosts().moved == 1);
  }
  std::vector<std::string> now = registry.ReadyAddresses("cpt-1", "video", clock.Now());
  REQUIRE(now.size() == 1);
  CHECK(absl::StartsWith(now[0], "10.2."));

  // The host returns with its old domain still running.
  hosts[0].down = false;
  REQUIRE(hosts[0].fake.List()->size() == 1);
  // A follower's probe: the stale domain is the leader's to destroy, so the
  // host stays down until it is gone.
  CHECK(vms.ProbeHosts().returned == 0);
  {
    Registry::FenceScope scope(d.a_fence);  // the deposed leader destroys nothing
    CHECK(vms.CheckHosts().returned == 0);
  }
  CHECK(hosts[0].fake.List()->size() == 1);
  {
    Registry::FenceScope scope(d.b_fence);  // the leader reconciles it
    CHECK(vms.CheckHosts().returned == 1);
  }
  CHECK(hosts[0].fake.List()->empty());
  // Down and back again with nothing stale: a follower's probe takes it back.
  hosts[0].down = true;
  CHECK(vms.ProbeHosts().down == 1);
  hosts[0].down = false;
  CHECK(vms.ProbeHosts().returned == 1);
}

TEST_CASE("fencing: the usage monitor measures on every replica, drains only as leader",
          "[store][etcd][cluster]") {
  Deposed d;
  testing::VmFixture fx({.manual_clock = true, .durable = d.store.get()});
  vm::UsageMonitor monitor(fx.fake, fx.registry, fx.vms, fx.clock,
                           {.poll_interval = absl::Seconds(10),
                            .idle_cpu_percent = 2,
                            .idle_network_bytes_per_s = 10,
                            .idle_period = absl::Seconds(30),
                            .drain = absl::Seconds(20)});
  REQUIRE(fx.registry.RegisterProfile("cpt-1", {}, "admin", fx.clock.Now()).ok());
  REQUIRE(fx.vms.AddVm("cpt-1", "video").ok());
  const std::string name = fx.registry.ListVms("cpt-1").at(0).name;
  auto idle_for = [&](int polls) {
    vm::UsageMonitor::Report r;
    for (int i = 0; i < polls; ++i) {
      fx.fake.AddUsage(name, absl::ZeroDuration(), 0, 0);
      fx.clock.Advance(absl::Seconds(10));
      r = *monitor.Poll();
    }
    return r;
  };
  // A follower: the gate says another replica acts.
  monitor.set_leader_gate([](const std::function<void()>&) { return false; });
  vm::UsageMonitor::Report r = idle_for(5);
  CHECK(r.idle == 1);
  CHECK(r.drained == 0);
  // A deposed leader that still believes it leads: the drain is refused.
  monitor.set_leader_gate(Deposed::GateOf(d.a_fence));
  r = idle_for(1);
  CHECK(r.drained == 0);
  CHECK(r.errors == 1);
  CHECK(fx.registry.GetVm(name)->state == registry::VmState::kReady);
  // The leader drains it.
  monitor.set_leader_gate(Deposed::GateOf(d.b_fence));
  r = idle_for(1);
  CHECK(r.drained == 1);
  CHECK(fx.registry.GetVm(name)->state == registry::VmState::kDraining);
}

TEST_CASE("replica: the leader gate acts only while this replica leads", "[store][etcd][cluster]") {
  EtcdFixture etcd;
  std::unique_ptr<store::EtcdRegistryStore> opened = etcd.Connect();
  Registry registry(*opened);
  REQUIRE(registry.Load().ok());
  REQUIRE(registry.Follow().ok());
  auto replica = Replica::Start(*opened, registry, {.id = "r1", .ttl = absl::Seconds(1)});
  REQUIRE(replica.ok());
  Replica::LeaderGate gate = (*replica)->leader_gate();
  int ran = 0;
  CHECK_FALSE(gate([&] { ++ran; }));  // not campaigning yet
  (*replica)->Campaign();
  REQUIRE(testing::WaitFor([&] { return (*replica)->is_leader(); }, absl::Seconds(10)));
  bool fenced = false;
  CHECK(gate([&] {
    ++ran;
    fenced = Registry::FenceScope::Current() != nullptr;
  }));
  CHECK(fenced);
  replica->reset();
  CHECK_FALSE(gate([&] { ++ran; }));  // safe, and inert, once the replica is gone
  CHECK(ran == 1);
}

TEST_CASE("replica: a leader cut off from etcd stops acting within its lease TTL",
          "[store][etcd][cluster]") {
  EtcdFixture etcd;
  std::unique_ptr<store::EtcdRegistryStore> opened = etcd.Connect();
  Registry registry(*opened);
  REQUIRE(registry.Load().ok());
  REQUIRE(registry.Follow().ok());
  const absl::Duration ttl = absl::Seconds(1);
  auto replica = Replica::Start(*opened, registry, {.id = "r1", .ttl = ttl});
  REQUIRE(replica.ok());
  Replica::LeaderGate gate = (*replica)->leader_gate();
  (*replica)->Campaign();
  REQUIRE(testing::WaitFor([&] { return gate([] {}); }, absl::Seconds(10)));
  // The only etcd member stops answering: the replica's calls wait out their
  // 5 s deadline, so it still believes it leads for a while. Its gate must
  // not act beyond a TTL after etcd last confirmed the role.
  REQUIRE(::kill(etcd.cluster->pid(0), SIGSTOP) == 0);
  const absl::Time cut = absl::Now();
  REQUIRE(testing::WaitFor([&] { return !gate([] {}); }, absl::Seconds(10)));
  const absl::Duration acted_for = absl::Now() - cut;
  INFO("the gate acted for " << absl::FormatDuration(acted_for) << " after the cut");
  CHECK(acted_for <= ttl + absl::Milliseconds(500));
  absl::SleepFor(absl::Seconds(1));
  CHECK_FALSE(gate([] {}));
  REQUIRE(::kill(etcd.cluster->pid(0), SIGCONT) == 0);
  // etcd back: the replica leads again (confirmed, or elected anew).
  CHECK(testing::WaitFor([&] { return gate([] {}); }, absl::Seconds(20)));
}

TEST_CASE("fencing: a leader's checkpoint of 250 series fits etcd's 128 ops per transaction",
          "[store][etcd][cluster]") {
  Deposed d;
  testing::VmFixture fx({.manual_clock = true, .durable = d.store.get()});
  ppe::config::v1::PpeConfig config;
  config.mutable_registry()->set_store(ppe::config::v1::Registry::ETCD);
  const int etcd_ops = scaler::Scaler::OptionsFromConfig(config).txn_ops;
  CHECK(etcd_ops <= 126);  // the fence adds its compares
  // As many ops as SQLite's transactions take: etcd refuses the checkpoint.
  const int txn_ops = GENERATE_COPY(4000, etcd_ops);
  scaler::DemandTracker demand;
  scaler::Scaler scaler(fx.registry, fx.vms, demand, fx.workers, fx.clock,
                        {.mode = scaler::Scaler::Mode::kReactive,
                         .bucket = absl::Seconds(1),
                         .txn_ops = txn_ops,
                         .budget = 0},
                        d.store.get());
  constexpr int kSeries = 250;
  for (int i = 0; i < kSeries; ++i) {
    REQUIRE(
        fx.registry.RegisterProfile("cpt-" + std::to_string(i), {}, "admin", fx.clock.Now()).ok());
  }
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < kSeries; ++i) demand.Record("cpt-" + std::to_string(i), "video", 1 + t);
    fx.clock.Advance(absl::Seconds(1));
    Registry::FenceScope scope(d.b_fence);
    scaler.Tick();
  }
  const scaler::Scaler::Stats stats = scaler.stats();
  const size_t stored = d.store->List("/ppe/scaling/demand/")->kvs.size();
  if (txn_ops == 4000) {
    CHECK(stats.checkpoint_errors == 3);
    CHECK(stored == 0);
  } else {
    CHECK(stats.checkpoint_errors == 0);
    CHECK(stored == static_cast<size_t>(kSeries));
    CHECK(stats.checkpoint_txns == 9);  // 3 per bucket
    WARN("etcd: " << kSeries << " series with requests: per bucket " << stats.checkpoint_puts / 3
                  << " puts in " << stats.checkpoint_txns / 3 << " fenced transactions, "
                  << stats.checkpoint_bytes / 3 << " bytes of keys and values");
  }
}

}  // namespace
}  // namespace ppe::cluster
