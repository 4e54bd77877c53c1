// LibvirtHypervisor::Stats on real LXC containers (run through
// tests/lxc/run_lxc_test.sh, which provides a private libvirtd and a free
// bridge): libvirt 9.0's LXC driver has no virConnectGetAllDomainStats, so
// this is the per-domain path (virDomainGetInfo + virDomainInterfaceStats).

#include <algorithm>
#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ppe-service/vm/libvirt_hypervisor.h"
#include "ppe-service/vm/readiness_probe.h"
#include "tests/fixtures/lxc_lab.h"

namespace ppe::vm {
namespace {

constexpr int kPort = 8000;

std::optional<DomainStats> Find(LibvirtHypervisor& hv, const std::string& name) {
  absl::StatusOr<std::vector<DomainStats>> stats = hv.Stats();
  REQUIRE(stats.ok());
  for (const DomainStats& s : *stats) {
    if (s.name == name) return s;
  }
  return std::nullopt;
}

TEST_CASE("lxc: domain stats report CPU time, memory and NIC bytes that grow with use", "[lxc]") {
  const std::string net = testing::LxcLabEnv("PPE_LXC_NET"),
                    bridge = testing::LxcLabEnv("PPE_LXC_BRIDGE");
  auto hv = LibvirtHypervisor::Open(testing::LxcLabEnv("PPE_LXC_URI"));
  REQUIRE(hv.ok());
  const std::string ip = absl::StrCat(net, ".7");
  const int x = std::atoi(net.substr(net.rfind('.') + 1).c_str());
  DomainSpec spec{
      .name = absl::StrCat("ppe-usage-", bridge),
      .memory_mib = 64,
      .max_memory_mib = 64,
      .tag = {.service = "video", .ip = ip, .mac = absl::StrFormat("52:54:00:d6:%02x:07", x)},
      .bridge = bridge,
      .command = {"/usr/bin/python3", "-m", "http.server", "--bind", ip, std::to_string(kPort)}};
  REQUIRE((*hv)->Create(spec).ok());
  REQUIRE(WaitReady(ip, kPort, absl::Now() + absl::Seconds(20), absl::Milliseconds(20)).ok());

  std::optional<DomainStats> before = Find(**hv, spec.name);
  REQUIRE(before.has_value());
  REQUIRE(before->cpu_time_ns.has_value());
  REQUIRE(before->memory_kib.has_value());
  REQUIRE(before->rx_bytes.has_value());
  REQUIRE(before->tx_bytes.has_value());
  CHECK(before->vcpus == 1);
  CHECK(*before->memory_kib > 0);
  int served = 0;
  for (int i = 0; i < 50; ++i) served += !testing::HttpStatusLine(ip, kPort).empty();
  CHECK(served == 50);
  std::optional<DomainStats> after = Find(**hv, spec.name);
  REQUIRE(after.has_value());
  const double cpu_ms = (*after->cpu_time_ns - *before->cpu_time_ns) / 1e6;
  const uint64_t rx = *after->rx_bytes - *before->rx_bytes;
  const uint64_t tx = *after->tx_bytes - *before->tx_bytes;
  WARN("50 HTTP requests: " << cpu_ms << " ms CPU, " << rx << " bytes in, " << tx
                            << " bytes out (as the container sees them)");
  CHECK(cpu_ms > 0);
  CHECK(rx > 50 * 40);   // at least the requests
  CHECK(tx > 50 * 200);  // at least the directory listings
  REQUIRE((*hv)->Destroy(spec.name).ok());
  std::optional<DomainStats> gone = Find(**hv, spec.name);
  CHECK_FALSE(gone.has_value());
}

}  // namespace
}  // namespace ppe::vm
