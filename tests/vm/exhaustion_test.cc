#include <catch2/catch.hpp>

#include "ppe-service/vm/exhaustion_log.h"
#include "tests/fixtures/registry_fixture.h"

namespace ppe::vm {
namespace {

// A manager whose only service has `pool` addresses; everything real but the hypervisor.
struct Small : testing::VmFixture {
  explicit Small(const std::string& pool_cidr, size_t max_vms = 0, VmLimits limits = {})
      : VmFixture({.pool_cidr = pool_cidr,
                   .shape = {"cpu-heavy", 2, 2, 256, 256},
                   .max_vms = max_vms,
                   .limits = limits}) {
    REQUIRE(registry.RegisterProfile("p", {.region = "eu"}, "admin", absl::Now()).ok());
  }
  int Fill(int attempts) {
    int created = 0;
    for (int i = 0; i < attempts; ++i) created += vms.AddVm("p", "video").ok() ? 1 : 0;
    return created;
  }
  const ExhaustionLog::Entry* Find(Limit limit) {
    snapshot = vms.exhaustion().Snapshot();
    for (const auto& e : snapshot) {
      if (e.limit == limit && e.service == "video") return &e;
    }
    return nullptr;
  }
  std::vector<ExhaustionLog::Entry> snapshot;
};

TEST_CASE("address pool exhaustion is counted and flagged until a VM is created") {
  Small s("10.9.0.0/29", 100, {.max_vms_per_profile = 100});
  int capacity = static_cast<int>(s.pool->capacity());
  CHECK(s.Fill(capacity + 3) == capacity);
  const ExhaustionLog::Entry* e = s.Find(Limit::kAddressPool);
  REQUIRE(e != nullptr);
  CHECK(e->refusals == 3);
  CHECK(e->exhausted);
  CHECK(std::string(LimitName(e->limit)) == "address_pool");
  // An address comes back: the next VM is created and the flag clears.
  auto vms = s.registry.ListVms("p");
  REQUIRE(s.vms.ReleaseVm(vms.front().name).ok());
  CHECK(s.Fill(1) == 1);
  e = s.Find(Limit::kAddressPool);
  REQUIRE(e != nullptr);
  CHECK_FALSE(e->exhausted);
  CHECK(e->refusals == 3);
}

TEST_CASE("service, global and host-capacity limits are told apart") {
  Small service("10.9.0.0/24", 2, {.max_vms_per_profile = 100});
  CHECK(service.Fill(4) == 2);
  REQUIRE(service.Find(Limit::kService) != nullptr);
  CHECK(service.Find(Limit::kService)->refusals == 2);
  CHECK(service.Find(Limit::kAddressPool) == nullptr);

  Small global("10.9.0.0/24", 0, {.max_vms_per_profile = 100, .max_vms_total = 1});
  CHECK(global.Fill(3) == 1);
  REQUIRE(global.Find(Limit::kGlobal) != nullptr);
  CHECK(global.Find(Limit::kGlobal)->refusals == 2);

  Small host("10.9.0.0/24", 0, {.max_vms_per_profile = 100, .host_vcpus = 5});
  CHECK(host.Fill(4) == 2);  // 2 vCPUs each
  REQUIRE(host.Find(Limit::kHostCapacity) != nullptr);
  CHECK(host.Find(Limit::kHostCapacity)->exhausted);
}

TEST_CASE("the exhaustion log line is rate-limited per limit and service") {
  ExhaustionLog log(absl::Seconds(60));
  absl::Time t = absl::Now();
  for (int i = 0; i < 1000; ++i) log.Hit(Limit::kGlobal, "video", "max_vms_total 1", t);
  log.Hit(Limit::kGlobal, "db", "max_vms_total 1", t);
  auto snapshot = log.Snapshot();
  REQUIRE(snapshot.size() == 2);
  for (const auto& e : snapshot) CHECK(e.refusals == (e.service == "video" ? 1000 : 1));
}

}  // namespace
}  // namespace ppe::vm
