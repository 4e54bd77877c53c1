// Against the real libvirt library: the test:/// driver runs in-process, no daemon.
#include "ppe-service/vm/libvirt_hypervisor.h"

#include <catch2/catch.hpp>

#include "ppe-service/vm/vm_manager.h"
#include "tests/fixtures/registry_fixture.h"

namespace ppe::vm {
namespace {

DomainSpec Spec(const std::string& name, const std::string& ip, const std::string& mac) {
  return DomainSpec{.name = name,
                    .vcpus = 2,
                    .max_vcpus = 4,
                    .memory_mib = 512,
                    .max_memory_mib = 1024,
                    .tag = {.profile = "d95cd330",
                            .service = "video",
                            .ip = ip,
                            .mac = mac,
                            .network = "default",
                            .registry = "r1"}};
}

const DomainInfo* Find(const std::vector<DomainInfo>& domains, const std::string& name) {
  for (const auto& d : domains) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

TEST_CASE("test:///default: a domain is defined, tagged, running, and destroyed", "[integration]") {
  auto hv = LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  CHECK_FALSE((*hv)->capabilities().real_network);
  REQUIRE((*hv)->Create(Spec("ppe-video-it1", "192.168.122.70", "52:54:00:a8:7a:46")).ok());

  auto domains = (*hv)->List();
  REQUIRE(domains.ok());
  const DomainInfo* d = Find(*domains, "ppe-video-it1");
  REQUIRE(d != nullptr);
  CHECK(d->running);
  REQUIRE(d->tag.has_value());
  CHECK(d->tag->profile == "d95cd330");
  CHECK(d->tag->service == "video");
  CHECK(d->tag->ip == "192.168.122.70");
  CHECK(d->tag->mac == "52:54:00:a8:7a:46");
  CHECK(d->tag->registry == "r1");
  // The driver's own sample domain is not PPE's.
  const DomainInfo* sample = Find(*domains, "test");
  REQUIRE(sample != nullptr);
  CHECK_FALSE(sample->tag.has_value());

  // Same name again: refused, and nothing half-made is left behind.
  CHECK_FALSE((*hv)->Create(Spec("ppe-video-it1", "192.168.122.71", "52:54:00:a8:7a:47")).ok());
  REQUIRE((*hv)->Destroy("ppe-video-it1").ok());
  CHECK(Find(*(*hv)->List(), "ppe-video-it1") == nullptr);
  CHECK((*hv)->Destroy("ppe-video-it1").code() == absl::StatusCode::kNotFound);
  // The DHCP host entry went with it: the address can be handed out again.
  REQUIRE((*hv)->Create(Spec("ppe-video-it2", "192.168.122.70", "52:54:00:a8:7a:46")).ok());
  REQUIRE((*hv)->Destroy("ppe-video-it2").ok());
}

TEST_CASE("domain XML carries the shape and PPE's metadata", "[integration]") {
  auto hv = LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  std::string xml = (*hv)->DomainXml(Spec("ppe-video-x", "10.0.0.5", "52:54:00:00:00:05"));
  CHECK(xml.find("<domain type='test'>") != std::string::npos);
  CHECK(xml.find("<vcpu current='2'>4</vcpu>") != std::string::npos);
  CHECK(xml.find("<memory unit='MiB'>1024</memory>") != std::string::npos);
  CHECK(xml.find(LibvirtHypervisor::kMetadataNs) != std::string::npos);
  auto tag = ParseVmTag(xml.substr(xml.find("<ppe:vm")));
  REQUIRE(tag.has_value());
  CHECK(tag->ip == "10.0.0.5");
  CHECK_FALSE(ParseVmTag("<vm profile='x'/>").has_value());  // no service: not a tag
}

TEST_CASE("VmManager allocates through libvirt and registers the VM", "[integration]") {
  auto hv = LibvirtHypervisor::Open("test:///default");
  REQUIRE(hv.ok());
  testing::VmFixture f({.pool_cidr = "192.168.122.64/26",
                        .shape = {"cpu-heavy", 2, 4, 512, 1024},
                        .network = "default",
                        .hypervisor = hv->get()});
  registry::Registry& registry = f.registry;
  REQUIRE(*registry.RegisterProfile("cpt1", {}, "admin", absl::Now()));
  absl::StatusOr<std::string> ip = f.Allocate("cpt1", std::nullopt);
  REQUIRE(ip.ok());
  CHECK(*ip == "192.168.122.65");
  auto list = registry.ListVms("cpt1");
  REQUIRE(list.size() == 1);
  CHECK(list[0].state == registry::VmState::kReady);
  auto domains = (*hv)->List();
  const DomainInfo* d = Find(*domains, list[0].name);
  REQUIRE(d != nullptr);
  CHECK(d->running);
  CHECK(d->tag->ip == *ip);
  REQUIRE((*hv)->Destroy(list[0].name).ok());
}

}  // namespace
}  // namespace ppe::vm
