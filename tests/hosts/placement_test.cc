// Placement: the Placer alone, then VmManager placing real test:/// domains
// on several hosts by region, distance and capacity.
#include <catch2/catch.hpp>

#include <set>

#include "ppe-service/vm/placement.h"
#include "tests/hosts/hosts_world.h"

namespace ppe::vm {
namespace {

using testing::World;

RegionDistances EuUs() {
  RegionDistances d;
  d.Set("eu-west", "eu-central", 10);
  d.Set("eu-west", "us-east", 80);
  d.Set("eu-central", "us-east", 90);
  return d;
}

TEST_CASE("placement, region distances are symmetric, 0 to itself, '*' is the default",
          "[placement]") {
  RegionDistances d = EuUs();
  CHECK(d.Get("eu-west", "eu-west") == 0u);
  CHECK(d.Get("us-east", "eu-west") == 80u);
  CHECK(d.Get("eu-west", "us-east") == 80u);
  CHECK_FALSE(d.Get("eu-west", "ap-south").has_value());
  d.Set("*", "ap-south", 500);
  CHECK(d.Get("eu-west", "ap-south") == 500u);
  CHECK(d.Get("eu-west", "us-east") == 80u);  // a listed pair keeps its own
}

TEST_CASE("placement, own region first, then the nearest with room, never an overcommit",
          "[placement]") {
  Placer placer({{"a", "eu-west", 4, 4096}, {"b", "eu-central", 4, 4096}, {"c", "us-east", 8, 0}},
                EuUs());
  const VmSize vm{2, 1024};
  std::vector<HostLoad> loads(3, HostLoad{.available = true});
  auto choice = placer.Choose("eu-west", vm, loads);
  REQUIRE(choice);
  CHECK(choice->host == 0);
  CHECK(choice->distance == 0);
  loads[0].used = {4, 1024};  // a's vCPUs are all taken
  choice = placer.Choose("eu-west", vm, loads);
  REQUIRE(choice);
  CHECK(choice->host == 1);  // eu-central (10) before us-east (80)
  CHECK(choice->distance == 10);
  loads[1].used = {2, 3584};  // b has vCPUs left but only 512 MiB
  choice = placer.Choose("eu-west", vm, loads);
  REQUIRE(choice);
  CHECK(choice->host == 2);
  loads[2].used = {8, 100000};  // c: no vCPU left (memory unlimited)
  CHECK_FALSE(placer.Choose("eu-west", vm, loads).has_value());
  // Exactly full fits; one more does not.
  CHECK(placer.Fits(0, {2, 1024}, {2, 3072}));
  CHECK_FALSE(placer.Fits(0, {2, 1024}, {3, 0}));
}

TEST_CASE("placement, unreachable regions and unavailable hosts are never chosen", "[placement]") {
  Placer placer({{"a", "eu-west", 0, 0}, {"b", "ap-south", 0, 0}}, EuUs());
  std::vector<HostLoad> loads(2, HostLoad{.available = true});
  auto choice = placer.Choose("ap-south", {1, 256}, loads);
  REQUIRE(choice);
  CHECK(choice->host == 1);
  loads[1].available = false;  // down: eu-west has no distance to ap-south
  CHECK_FALSE(placer.Choose("ap-south", {1, 256}, loads).has_value());
  // A spare (no region) goes anywhere, the least loaded first.
  loads[1].available = true;
  Placer sized({{"a", "eu-west", 4, 0}, {"b", "ap-south", 4, 0}}, EuUs());
  loads[0].used = {3, 0};
  loads[1].used = {1, 0};
  choice = sized.Choose("", {1, 256}, loads);
  REQUIRE(choice);
  CHECK(choice->host == 1);
}

TEST_CASE(
    "placement, VmManager puts each region's VMs on its hosts, then the nearest, then "
    "nowhere (fallback + metric)",
    "[placement]") {
  // 2 vCPUs each: two 1-vCPU VMs per host.
  World w({{"eu1", "eu-west", 2, 4096, "10.50.1.0/24"},
           {"us1", "us-east", 2, 4096, "10.50.2.0/24"},
           {"ap1", "ap-south", 2, 4096, "10.50.3.0/24"}},
          EuUs());
  std::set<std::string> addresses;
  auto in = [](const std::string& ip, const std::string& prefix) {
    return ip.rfind(prefix, 0) == 0;
  };
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::string> ip = w.Allocate(absl::StrCat("eu-", i), "eu-west");
    REQUIRE(ip.ok());
    CHECK(in(*ip, "10.50.1."));
    CHECK(addresses.insert(*ip).second);
  }
  CHECK(w.Domains(0).size() == 2);
  CHECK(w.vms->placements_nearby() == 0);
  // eu1 is full: the next eu-west profile goes to us-east (80), not ap-south (no distance).
  for (int i = 2; i < 4; ++i) {
    absl::StatusOr<std::string> ip = w.Allocate(absl::StrCat("eu-", i), "eu-west");
    REQUIRE(ip.ok());
    CHECK(in(*ip, "10.50.2."));
    CHECK(addresses.insert(*ip).second);
  }
  CHECK(w.vms->placements_nearby() == 2);
  CHECK(w.Domains(1).size() == 2);
  // eu1 and us1 full, ap-south unreachable from eu-west: nowhere.
  absl::StatusOr<std::string> none = w.Allocate("eu-4", "eu-west");
  CHECK(absl::IsResourceExhausted(none.status()));
  CHECK(w.vms->placements_nowhere() == 1);
  bool exhausted = false;
  for (const auto& e : w.vms->exhaustion().Snapshot()) {
    exhausted |= e.limit == Limit::kHostCapacity && e.service == "video" && e.exhausted;
  }
  CHECK(exhausted);
  CHECK(w.Domains(2).empty());  // no overcommit anywhere, nothing on the far host
  CHECK(w.Host("eu1").used.vcpus == 2);
  CHECK(w.Host("us1").used.vcpus == 2);
  CHECK(w.Host("ap1").vms == 0);
  // ap-south's own profiles still fit on ap1.
  absl::StatusOr<std::string> ap = w.Allocate("ap-0", "ap-south");
  REQUIRE(ap.ok());
  CHECK(in(*ap, "10.50.3."));
  // Releasing a VM makes room again, in the profile's own region.
  std::vector<registry::VmRecord> eu0 = w.registry.ListVms("eu-0");
  REQUIRE(eu0.size() == 1);
  REQUIRE(w.vms->ReleaseVm(eu0[0].name).ok());
  absl::StatusOr<std::string> again = w.Allocate("eu-4", "eu-west");
  REQUIRE(again.ok());
  CHECK(in(*again, "10.50.1."));
}

TEST_CASE("placement, memory capacity counts too, with concurrent allocations", "[placement]") {
  // 1024 MiB: four 256-MiB VMs, whatever the vCPUs.
  World w({{"m1", "eu-west", 0, 1024, "10.51.1.0/24"}});
  std::vector<absl::StatusOr<std::string>> results(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { results[i] = w.Allocate(absl::StrCat("p", i), "eu-west"); });
  }
  for (auto& t : threads) t.join();
  int ok = 0, refused = 0;
  for (const auto& r : results) {
    ok += r.ok();
    refused += absl::IsResourceExhausted(r.status());
  }
  CHECK(ok == 4);
  CHECK(refused == 4);
  CHECK(w.Domains(0).size() == 4);
  CHECK(w.Host("m1").used.memory_mib == 1024);
}

}  // namespace
}  // namespace ppe::vm
