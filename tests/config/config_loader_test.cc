#include "ppe-service/config/config_loader.h"

#include <catch2/catch.hpp>

namespace ppe::config {
namespace {

constexpr const char* kMinimal = R"(
workload_classes { name: "cpu-heavy" vcpus: 2 }
zones {
  name: "CDN.example.test"
  nameservers: "ns1.cdn.example.test"
  services { name: "Video" workload_class: "cpu-heavy" address_pool: "10.9.0.0/24"
             fallback_addresses: "192.0.2.1" }
}
)";

TEST_CASE("a minimal config gets its defaults") {
  auto c = ParsePpeConfig(kMinimal, "test.conf");
  REQUIRE(c.ok());
  CHECK(c->listen() == "127.0.0.1:50051");
  CHECK(c->zones(0).name() == "cdn.example.test.");
  CHECK(c->zones(0).id() == 1);
  CHECK(c->zones(0).services(0).name() == "video");
  CHECK(c->zones(0).soa().mname() == "ns1.cdn.example.test.");
  CHECK(c->cpt().length() == 26);
  CHECK(c->answers().ttl() == 30);
  CHECK(c->workload_classes(0).max_vcpus() == 2);
  CHECK(c->hypervisor().uri() == "test:///default");
  CHECK(c->scaler().mode() == ppe::config::v1::Scaler::PREDICTIVE);
  CHECK(c->registry().store() == ppe::config::v1::Registry::SQLITE);
}

std::string ErrorOf(const std::string& text) {
  auto c = ParsePpeConfig(text, "test.conf");
  return c.ok() ? "" : std::string(c.status().message());
}

TEST_CASE("bad configs are refused with the file, line or field named") {
  CHECK(ErrorOf("listen: 5").find("test.conf:1:") != std::string::npos);
  CHECK(ErrorOf("no_such_field: 1").find("no_such_field") != std::string::npos);
  CHECK(ErrorOf("").find("zones") != std::string::npos);
  std::string text = kMinimal;
  CHECK(ErrorOf(text + "cpt { length: 8 }").find("cpt.length") != std::string::npos);
  CHECK(ErrorOf(text + "regions { cidr: \"10.0.0.0/99\" region: \"x\" }").find("regions[0].cidr") !=
        std::string::npos);
  std::string bad_pool = text;
  bad_pool.replace(bad_pool.find("10.9.0.0/24"), 11, "10.9.0.0/33");
  CHECK(ErrorOf(bad_pool).find("zones[0].services[0].address_pool") != std::string::npos);
  std::string bad_class = text;
  bad_class.replace(bad_class.find("workload_class: \"cpu-heavy\""), 27, "workload_class: \"gpu\"");
  CHECK(ErrorOf(bad_class).find("services[0].workload_class") != std::string::npos);
  std::string bad_fallback = text;
  bad_fallback.replace(bad_fallback.find("192.0.2.1"), 9, "not-an-ip");
  CHECK(ErrorOf(bad_fallback).find("fallback_addresses[0]") != std::string::npos);
}

TEST_CASE("scaler.mode and registry.store are enums; an old string value says how to write it") {
  std::string text = kMinimal;
  auto c = ParsePpeConfig(text + "scaler { mode: OFF }\nregistry { store: MEMORY }", "t.conf");
  REQUIRE(c.ok());
  CHECK(c->scaler().mode() == ppe::config::v1::Scaler::OFF);
  CHECK(c->registry().store() == ppe::config::v1::Registry::MEMORY);
  std::string old_mode = ErrorOf(text + "scaler { mode: \"reactive\" }");
  CHECK(old_mode.find("Expected integer or identifier") != std::string::npos);
  CHECK(old_mode.find("scaler.mode is an enum, written without quotes: mode: REACTIVE") !=
        std::string::npos);
  CHECK(ErrorOf(text + "registry { store: \"sqlite\" }").find("store: SQLITE") !=
        std::string::npos);
  CHECK(ErrorOf(text + "registry { store: \"nosql\" }").find("store: SQLITE | MEMORY | ETCD") !=
        std::string::npos);
  // admin_auth.mode stays a string: no hint there.
  CHECK(ErrorOf(text + "admin_auth { mode: \"password\" }").find("admin_auth.mode: unknown mode") !=
        std::string::npos);
  CHECK(ErrorOf(text + "registry { store: ETCD }").find("registry.etcd_endpoints") !=
        std::string::npos);
  CHECK(ErrorOf(text + "scaler { mode: 7 }").find("scaler.mode: must be PREDICTIVE") !=
        std::string::npos);
}

TEST_CASE("usage.mode is an enum too; the hint names the section the quoted value is in") {
  std::string text = kMinimal;
  auto c = ParsePpeConfig(text + "usage { mode: OBSERVE }", "t.conf");
  REQUIRE(c.ok());
  CHECK(c->usage().mode() == ppe::config::v1::Usage::OBSERVE);
  CHECK(ParsePpeConfig(text, "t.conf")->usage().mode() == ppe::config::v1::Usage::ACT);
  // "off" is a value of both modes: the enclosing section decides, over several lines.
  CHECK(ErrorOf(text + "usage {\n  mode: \"off\"\n}")
            .find("usage.mode is an enum, written without quotes: mode: OFF") != std::string::npos);
  CHECK(ErrorOf(text + "scaler {\n  # a comment { with a brace\n  mode: \"off\"\n}")
            .find("scaler.mode is an enum, written without quotes: mode: OFF") !=
        std::string::npos);
  CHECK(ErrorOf(text + "usage { mode: \"sometimes\" }").find("mode: ACT | OBSERVE | OFF") !=
        std::string::npos);
}

TEST_CASE("etcd_lease_ttl_s, hosts and region distances: defaults filled, then checked") {
  std::string text = kMinimal;
  auto c = ParsePpeConfig(text, "t.conf");
  REQUIRE(c.ok());
  CHECK(c->registry().etcd_lease_ttl_s() == 2);
  CHECK(c->hypervisor().host_grace_s() == 30);
  CHECK(c->hypervisor().host_check_ms() == 2000);
  CHECK(ErrorOf(text + "hypervisor { host_check_ms: 50 }").find("hypervisor.host_check_ms") !=
        std::string::npos);
  CHECK(ErrorOf(text + "region_distances { from: \"eu\" to: \"us\" distance: 10 }")
            .find("region_distances: needs `hosts`") != std::string::npos);
}

TEST_CASE("defaults are filled before the checks, and the admin_auth section is checked too") {
  std::string text = kMinimal;
  // drain_s defaults from answers.ttl; cpt.key_file from state_dir.
  auto c = ParsePpeConfig(text + "answers { ttl: 300 }\nstate_dir: \"/srv/ppe\"", "t.conf");
  REQUIRE(c.ok());
  CHECK(c->registry().drain_s() == 600);
  CHECK(c->cpt().key_file() == "/srv/ppe/cpt-keys");
  CHECK(ErrorOf(text + "admin_auth { mode: \"token\" }").find("test.conf: admin_listen") !=
        std::string::npos);
}

}  // namespace
}  // namespace ppe::config

namespace ppe::config {
namespace {

TEST_CASE("nameserver addresses: in-zone glue checked and canonicalised") {
  const std::string base = R"(
workload_classes { name: "c" }
zones {
  name: "cdn.example.test."
  nameservers: "ns1.cdn.example.test."
  nameservers: "ns.other.test."
  services { name: "video" workload_class: "c" address_pool: "10.9.0.0/24" }
)";
  auto ok = ParsePpeConfig(
      base +
          R"(nameserver_addresses { name: "NS1.cdn.example.test" addresses: "192.0.2.53" addresses: "2001:db8::53" } })",
      "t.conf");
  REQUIRE(ok.ok());
  CHECK(ok->zones(0).nameserver_addresses(0).name() == "ns1.cdn.example.test.");
  CHECK(
      ErrorOf(base +
              R"(nameserver_addresses { name: "ns9.cdn.example.test." addresses: "192.0.2.1" } })")
          .find("is not one of nameservers") != std::string::npos);
  CHECK(
      ErrorOf(base + R"(nameserver_addresses { name: "ns.other.test." addresses: "192.0.2.1" } })")
          .find("outside the zone") != std::string::npos);
  CHECK(ErrorOf(base + R"(nameserver_addresses { name: "ns1.cdn.example.test." } })")
            .find("nameserver_addresses[0].addresses") != std::string::npos);
  CHECK(ErrorOf(base + R"(nameserver_addresses { name: "ns1.cdn.example.test." addresses: "x" } })")
            .find("is not an IP address") != std::string::npos);
}

}  // namespace
}  // namespace ppe::config
