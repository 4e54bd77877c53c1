#include "ppe-service/registry/registry.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "ppe-service/store/sqlite_registry_store.h"
#include "tests/fixtures/registry_fixture.h"

namespace ppe::registry {
namespace {

VmRecord Vm(const std::string& name, const std::string& cpt, const std::string& ip) {
  return VmRecord{.name = name,
                  .cpt = cpt,
                  .service = "video",
                  .workload_class = "cpu-heavy",
                  .ip = ip,
                  .mac = "52:54:00:00:00:01",
                  .state = VmState::kProvisioning,
                  .created = absl::FromUnixSeconds(1000)};
}

TEST_CASE("profiles and VMs: register, pools, ready addresses, invalidate, remove") {
  testing::RegistryFixture f;
  Registry& r = f.registry;
  CHECK(r.instance_id().size() == 16);
  absl::Time t0 = absl::FromUnixSeconds(1000);
  REQUIRE(*r.RegisterProfile("cpt1", {.region = "eu"}, "admin", t0));
  CHECK_FALSE(*r.RegisterProfile("cpt1", {.region = "eu"}, "admin", t0));
  CHECK(r.IsActive("cpt1"));
  CHECK_FALSE(r.IsActive("cpt2"));

  REQUIRE(r.AddVm(Vm("vm1", "cpt1", "10.0.0.1")).ok());
  CHECK(r.ReadyAddresses("cpt1", "video", t0).empty());  // provisioning
  REQUIRE(r.SetVmState("vm1", VmState::kReady).ok());
  CHECK(r.ReadyAddresses("cpt1", "video", t0) == std::vector<std::string>{"10.0.0.1"});
  CHECK(r.PoolSize("cpt1", "video") == 1);
  // One address, one VM; unknown profiles get no VM.
  CHECK(r.AddVm(Vm("vm2", "cpt1", "10.0.0.1")).code() == absl::StatusCode::kAlreadyExists);
  CHECK(r.AddVm(Vm("vm3", "nope", "10.0.0.3")).code() == absl::StatusCode::kNotFound);

  REQUIRE(r.InvalidateProfile("cpt1", t0, t0 + absl::Seconds(60)).ok());
  CHECK_FALSE(r.IsActive("cpt1"));
  CHECK(r.ReadyAddresses("cpt1", "video", t0).empty());
  CHECK(r.GetVm("vm1")->state == VmState::kDraining);
  CHECK(r.GetVm("vm1")->release_after == t0 + absl::Seconds(60));
  CHECK(r.RegisterProfile("cpt1", {}, "dns", t0).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(r.RemoveProfile("cpt1").code() == absl::StatusCode::kFailedPrecondition);  // has a VM
  REQUIRE(r.RemoveVm("vm1").ok());
  REQUIRE(r.RemoveProfile("cpt1").ok());
  CHECK_FALSE(r.GetProfile("cpt1").has_value());
  CHECK(r.VmCount() == 0);
  // The address is free again.
  REQUIRE(*r.RegisterProfile("cpt2", {}, "dns", t0));
  CHECK(r.AddVm(Vm("vm4", "cpt2", "10.0.0.1")).ok());
}

TEST_CASE("SQLite: everything survives a reopen; last_seen is flushed, not written per query") {
  char dir[] = "/tmp/ppe-registry-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string path = std::string(dir) + "/registry.db";
  absl::Time t0 = absl::FromUnixSeconds(1000);
  std::string instance;
  {
    auto db = store::SqliteRegistryStore::Open(path);
    REQUIRE(db.ok());
    testing::RegistryFixture f(db->get());
    Registry& r = f.registry;
    instance = r.instance_id();
    REQUIRE(*r.RegisterProfile("cpt1", {.region = "eu", .device_class = "tv"}, "admin", t0));
    REQUIRE(*r.RegisterProfile("cpt2", {.region = "us"}, "dns", t0));
    REQUIRE(r.AddVm(Vm("vm1", "cpt1", "10.0.0.1")).ok());
    REQUIRE(r.SetVmState("vm1", VmState::kReady).ok());
    REQUIRE(r.AddVm(Vm("vm2", "cpt2", "10.0.0.2")).ok());
    int64_t rev = (*db)->CurrentRevision();
    for (int i = 0; i < 1000; ++i) r.ReadyAddresses("cpt1", "video", t0 + absl::Seconds(i));
    CHECK((*db)->CurrentRevision() == rev);  // look-ups write nothing
    CHECK(*r.FlushLastSeen() == 1);
    CHECK(*r.FlushLastSeen() == 0);
  }
  auto db = store::SqliteRegistryStore::Open(path);
  REQUIRE(db.ok());
  testing::RegistryFixture f(db->get());
  Registry& r = f.registry;
  CHECK(r.instance_id() == instance);
  auto p = r.GetProfile("cpt1");
  REQUIRE(p.has_value());
  CHECK(p->attributes.device_class == "tv");
  CHECK(p->origin == "admin");
  CHECK(p->last_seen >= t0 + absl::Seconds(998));  // tracked at 1 s resolution
  CHECK(p->pools.at("video") == std::vector<std::string>{"vm1"});
  CHECK(r.GetVm("vm1")->state == VmState::kReady);
  CHECK(r.GetVm("vm2")->state == VmState::kProvisioning);
  CHECK(r.ReadyAddresses("cpt1", "video", t0) == std::vector<std::string>{"10.0.0.1"});
  CHECK(r.AddVm(Vm("vm3", "cpt2", "10.0.0.2")).code() == absl::StatusCode::kAlreadyExists);
  unlink(path.c_str());
  unlink((path + "-wal").c_str());
  unlink((path + "-shm").c_str());
  unlink((path + ".lock").c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace ppe::registry
