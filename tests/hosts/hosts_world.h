#pragma once

// Several libvirt hosts in one test process: each a test:/// connection to
// tests/hosts/test-node.xml (independent state per connection), wrapped in an
// Outage switch that makes the host unreachable. The switch is the one fake
// here: the test driver has no daemon to kill (tests/hosts/run_hosts_test.sh
// kills real libvirtd daemons instead).
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/vm/libvirt_hypervisor.h"
#include "ppe-service/vm/vm_manager.h"

namespace ppe::vm::testing {

class Outage final : public Hypervisor {
 public:
  explicit Outage(std::unique_ptr<Hypervisor> real) : real_(std::move(real)) {}
  HypervisorCapabilities capabilities() const override { return real_->capabilities(); }
  absl::Status Create(const DomainSpec& spec) override {
    if (down) return Unreachable();
    return real_->Create(spec);
  }
  absl::Status Destroy(absl::string_view name) override {
    if (down) return Unreachable();
    if (refuse_destroy) return absl::InternalError("cannot destroy (test)");
    return real_->Destroy(name);
  }
  absl::StatusOr<std::vector<DomainInfo>> List() override {
    if (down) return Unreachable();
    return real_->List();
  }
  absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) override {
    if (down) return Unreachable();
    return real_->Resize(name, vcpus, memory_mib);
  }
  // What the host really runs, even while it is "down".
  Hypervisor& real() { return *real_; }

  std::atomic<bool> down{false};
  std::atomic<bool> refuse_destroy{false};  // the host answers, but Destroy fails

 private:
  static absl::Status Unreachable() { return absl::UnavailableError("host unreachable (test)"); }
  std::unique_ptr<Hypervisor> real_;
};

inline std::string TestNodeUri() { return absl::StrCat("test://", PPE_HOSTS_TEST_NODE_XML); }

struct HostDef {
  std::string name, region;
  unsigned vcpus = 0, memory_mib = 0;
  std::string cidr;
};

// A registry, hosts and a VmManager for service "video" (1 vCPU, 256 MiB VMs).
struct World {
  explicit World(std::vector<HostDef> defs, RegionDistances distances = {},
                 VmLimits limits = {.max_vms_per_profile = 100, .max_vms_total = 1000})
      : registry(store), workers(4) {
    REQUIRE(registry.Load().ok());
    std::vector<HostSpec> specs;
    for (const HostDef& d : defs) {
      auto hv = LibvirtHypervisor::Open(TestNodeUri());
      REQUIRE(hv.ok());
      hosts.push_back(std::make_unique<Outage>(std::move(*hv)));
      specs.push_back(
          {.name = d.name,
           .region = d.region,
           .capacity_vcpus = d.vcpus,
           .capacity_memory_mib = d.memory_mib,
           .hypervisor = hosts.back().get(),
           .pools = {{.service = "video",
                      .addresses = std::make_shared<AddressPool>(*AddressPool::Create(d.cidr))}}});
    }
    vms = std::make_unique<VmManager>(
        std::move(specs), std::move(distances), registry,
        std::vector<ServicePlacement>{{.service = "video", .shape = {"small", 1, 1, 256, 256}}},
        workers, clock, limits, HostOptions{.grace = absl::Seconds(30)});
  }
  // A profile of `region` with one VM: its address, or the allocation's error.
  absl::StatusOr<std::string> Allocate(const std::string& cpt, const std::string& region) {
    absl::StatusOr<std::string> ip;
    absl::Notification done;
    cpt::Attributes attributes;
    attributes.region = region;
    vms->EnsureVm(cpt, "video", VmManager::Registration{attributes, "admin"},
                  [&](absl::StatusOr<std::string> r) {
                    ip = std::move(r);
                    done.Notify();
                  });
    done.WaitForNotification();
    return ip;
  }
  // PPE's domains on host `i`, as the host really holds them.
  std::vector<std::string> Domains(size_t i) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<DomainInfo>> listed = hosts[i]->real().List();
    REQUIRE(listed.ok());
    for (const DomainInfo& d : *listed) {
      if (d.tag && d.tag->registry == registry.instance_id()) out.push_back(d.name);
    }
    return out;
  }
  const VmManager::HostStatus& Host(const std::string& name) {
    status = vms->Hosts();
    for (const auto& h : status) {
      if (h.name == name) return h;
    }
    FAIL("no host " << name);
    return status.front();
  }

  store::MemoryRegistryStore store;
  registry::Registry registry;
  ManualClock clock{absl::FromUnixSeconds(1700000000)};
  ThreadPool workers;
  std::vector<std::unique_ptr<Outage>> hosts;
  std::unique_ptr<VmManager> vms;
  std::vector<VmManager::HostStatus> status;
};

}  // namespace ppe::vm::testing
