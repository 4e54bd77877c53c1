// The `hosts` config section: defaults, clear errors, and configs without it
// unchanged; HostsFromConfig opening one test:/// connection per host.
#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "ppe-service/config/config_loader.h"
#include "ppe-service/vm/hosts_from_config.h"
#include "tests/hosts/hosts_world.h"

namespace ppe::vm {
namespace {

constexpr const char* kZone = R"(
workload_classes { name: "small" vcpus: 1 memory_mib: 256 }
zones {
  name: "cdn.example.test"
  nameservers: "ns1.example.net"
  services { name: "video" workload_class: "small" fallback_addresses: "192.0.2.1" }
  services { name: "img" workload_class: "small" fallback_addresses: "192.0.2.2" }
}
)";

std::string TwoHosts() {
  return absl::StrCat(kZone, R"(
hosts { name: "a" uri: "@URI@" region: "EU-West" capacity_vcpus: 8 capacity_memory_mib: 4096
        bridge: "br-a" gateway: "10.60.1.1"
        address_pools { service: "video" cidr: "10.60.1.0/25" }
        address_pools { service: "img" cidr: "10.60.1.128/25" } }
hosts { name: "b" uri: "@URI@" region: "us-east"
        address_pools { service: "video" cidr: "10.60.2.0/24" } }
region_distances { from: "eu-west" to: "us-east" distance: 80 }
region_distances { from: "*" to: "us-east" distance: 200 }
)");
}

std::string ErrorOf(const std::string& text) {
  auto c = config::ParsePpeConfig(text, "hosts.conf");
  return c.ok() ? "" : std::string(c.status().message());
}

TEST_CASE("config, defaults and one connection per host", "[hosts]") {
  std::string text = absl::StrReplaceAll(TwoHosts(), {{"@URI@", testing::TestNodeUri()}});
  auto c = config::ParsePpeConfig(text, "hosts.conf");
  REQUIRE(c.ok());
  CHECK(c->hosts(0).region() == "eu-west");  // lower-cased, as profiles' regions are
  CHECK(c->hosts(0).prefix_length() == 25);
  CHECK(c->hypervisor().host_grace_s() == 30);
  CHECK(c->hypervisor().host_check_ms() == 2000);
  absl::StatusOr<Hosts> hosts = HostsFromConfig(*c);
  REQUIRE(hosts.ok());
  REQUIRE(hosts->specs.size() == 2);
  CHECK(hosts->specs[0].name == "a");
  CHECK(hosts->specs[0].capacity_vcpus == 8);
  CHECK(hosts->specs[0].pools.size() == 2);
  CHECK(hosts->specs[0].pools[0].bridge == "br-a");
  CHECK(hosts->specs[1].pools.size() == 1);
  CHECK(hosts->specs[0].hypervisor != hosts->specs[1].hypervisor);
  CHECK(hosts->distances.Get("us-east", "eu-west") == 80u);
  CHECK(hosts->distances.Get("ap-south", "eu-west") == 200u);
  CHECK(hosts->options.grace == absl::Seconds(30));
  absl::StatusOr<VmManager::Options> vm_options = VmManager::OptionsFromConfig(*c);
  REQUIRE(vm_options.ok());
  CHECK(vm_options->services.size() == 2);
  CHECK(vm_options->services[0].addresses == nullptr);  // per host
}

TEST_CASE("config, without hosts, one implicit host as before", "[hosts]") {
  std::string text = absl::StrReplaceAll(
      kZone, {{"fallback_addresses: \"192.0.2.1\"",
               "address_pool: \"10.61.0.0/24\" fallback_addresses: \"192.0.2.1\""},
              {"fallback_addresses: \"192.0.2.2\"",
               "address_pool: \"10.61.1.0/24\" fallback_addresses: \"192.0.2.2\""}});
  text += absl::StrCat("hypervisor { uri: \"", testing::TestNodeUri(), "\" capacity_vcpus: 3 }\n");
  auto c = config::ParsePpeConfig(text, "one.conf");
  REQUIRE(c.ok());
  absl::StatusOr<Hosts> hosts = HostsFromConfig(*c);
  REQUIRE(hosts.ok());
  REQUIRE(hosts->specs.size() == 1);
  CHECK(hosts->specs[0].name == "default");
  CHECK(hosts->specs[0].region.empty());
  CHECK(hosts->specs[0].capacity_vcpus == 3);
  CHECK(hosts->specs[0].pools.size() == 2);
  // And the service pool stays required without hosts.
  CHECK(ErrorOf(kZone).find("address_pool") != std::string::npos);
}

TEST_CASE("config, clear errors", "[hosts]") {
  std::string ok = TwoHosts();
  CHECK(ErrorOf(ok) == "");
  auto with = [&](const std::string& from, const std::string& to) {
    std::string text = absl::StrReplaceAll(ok, {{from, to}});
    REQUIRE(text != ok);
    return ErrorOf(text);
  };
  CHECK(with("name: \"b\"", "name: \"a\"").find("hosts[1].name: duplicate 'a'") !=
        std::string::npos);
  CHECK(with("region: \"us-east\"\n", "\n").find("hosts[1] (b).region: is required") !=
        std::string::npos);
  CHECK(with("cidr: \"10.60.2.0/24\"", "cidr: \"10.60.1.0/24\"").find("overlaps") !=
        std::string::npos);
  CHECK(with("service: \"video\" cidr: \"10.60.2", "service: \"audio\" cidr: \"10.60.2")
            .find("'audio' is not a service name") != std::string::npos);
  CHECK(with("address_pools { service: \"img\" cidr: \"10.60.1.128/25\" }", "")
            .find("service 'img' has no address pool on any host") != std::string::npos);
  CHECK(with("from: \"eu-west\" to: \"us-east\"", "from: \"eu-west\" to: \"eu-west\"")
            .find("distance 0 from itself") != std::string::npos);
  CHECK(with("from: \"eu-west\" to: \"us-east\" distance: 80",
             "from: \"us-east\" to: \"eu-west\" distance: 80 } region_distances { from: "
             "\"eu-west\" to: \"us-east\" distance: 90")
            .find("a second distance") != std::string::npos);
  CHECK(with("bridge: \"br-a\"", "bridge: \"br-a\" network: \"default\"")
            .find("bridge or network, not both") != std::string::npos);
  CHECK(with("uri: \"@URI@\" region: \"us-east\"", "region: \"us-east\"")
            .find("hosts[1] (b).uri: is required") != std::string::npos);
}

}  // namespace
}  // namespace ppe::vm
