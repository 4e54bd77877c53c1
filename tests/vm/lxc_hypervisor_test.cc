// LibvirtHypervisor against real LXC containers (run through run_lxc_test.sh,
// which provides a private libvirtd and a bridge), and the parts of Resize and
// the reconnect policy that the in-process test driver can show.
#include <arpa/inet.h>
#include <libvirt/libvirt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ppe-service/vm/libvirt_hypervisor.h"
#include "ppe-service/vm/readiness_probe.h"
#include "tests/fixtures/lxc_lab.h"
#include "tests/fixtures/wait_for.h"

namespace ppe::vm {
namespace {

constexpr int kPort = 8000;

const DomainInfo* Find(const std::vector<DomainInfo>& domains, const std::string& name) {
  for (const auto& d : domains) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

struct Lab {
  std::string uri = testing::LxcLabEnv("PPE_LXC_URI");
  std::string run = testing::LxcLabEnv("PPE_LXC_RUN");
  std::string bridge = testing::LxcLabEnv("PPE_LXC_BRIDGE");
  std::string net = testing::LxcLabEnv("PPE_LXC_NET");  // "10.213.X"
  std::string setup = testing::LxcLabEnv("PPE_LXC_SETUP");

  DomainSpec Spec(const std::string& name, int host) const {
    std::string ip = absl::StrCat(net, ".", host);
    int x = std::atoi(net.substr(net.rfind('.') + 1).c_str());
    return DomainSpec{
        .name = name,
        .vcpus = 1,
        .max_vcpus = 2,
        .memory_mib = 64,
        .max_memory_mib = 128,
        .tag = {.profile = "d95cd330",
                .service = "video",
                .ip = ip,
                .mac = absl::StrFormat("52:54:00:d5:%02x:%02x", x, host),
                .registry = "lxc-test"},
        .bridge = bridge,
        .prefix_length = 24,
        // No default route: with a gateway that does not forward, http.server's
        // reverse look-up of its address waits ~10 s for the resolver (see docs/lxc.md).
        .gateway = "",
        .command = {"/usr/bin/python3", "-m", "http.server", "--bind", ip, std::to_string(kPort)},
        .cpu_shares = 512,
    };
  }
  std::string Name(int i) const { return absl::StrCat("ppe-lxctest-", bridge, "-", i); }

  pid_t DaemonPid() const {
    std::ifstream in(run + "/libvirtd.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }
};

// A fresh connection of our own, to check what PPE's hypervisor did.
struct Inspect {
  explicit Inspect(const std::string& uri) : conn(virConnectOpen(uri.c_str())) {}
  ~Inspect() {
    if (conn) virConnectClose(conn);
  }
  std::string Xml(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn, name.c_str());
    if (!dom) return "";
    char* xml = virDomainGetXMLDesc(dom, 0);
    std::string out = xml ? xml : "";
    free(xml);
    virDomainFree(dom);
    return out;
  }
  unsigned long long CpuShares(const std::string& name) {
    virDomainPtr dom = virDomainLookupByName(conn, name.c_str());
    if (!dom) return 0;
    virTypedParameter params[8];
    int n = 8;
    unsigned long long shares = 0;
    if (virDomainGetSchedulerParametersFlags(dom, params, &n, VIR_DOMAIN_AFFECT_LIVE) == 0) {
      for (int i = 0; i < n; ++i) {
        if (std::string(params[i].field) == VIR_DOMAIN_SCHEDULER_CPU_SHARES) {
          shares = params[i].value.ul;
        }
      }
    }
    virDomainFree(dom);
    return shares;
  }
  virConnectPtr conn;
};

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

TEST_CASE("lxc: containers boot, serve HTTP on their own address, resize live, go away",
          "[.][lxc]") {
  Lab lab;
  auto opened = LibvirtHypervisor::Open(lab.uri);
  REQUIRE(opened.ok());
  LibvirtHypervisor& hv = **opened;
  REQUIRE(hv.driver() == "lxc");
  CHECK(hv.capabilities().real_network);
  CHECK(hv.capabilities().live_memory);
  CHECK(hv.capabilities().live_cpu_shares);
  CHECK_FALSE(hv.capabilities().live_vcpus);

  std::string xml = hv.DomainXml(lab.Spec("ppe-xml", 9));
  CHECK(xml.find("<domain type='lxc'>") != std::string::npos);
  CHECK(xml.find("<init>/usr/bin/tini</init><initarg>--</initarg>"
                 "<initarg>/usr/bin/python3</initarg>") != std::string::npos);
  CHECK(xml.find("<source dir='/'/><target dir='/'/><readonly/>") != std::string::npos);
  CHECK(xml.find(absl::StrCat("<source bridge='", lab.bridge, "'/>")) != std::string::npos);
  CHECK(xml.find(absl::StrCat("<ip address='", lab.net, ".9' prefix='24'/>")) != std::string::npos);
  CHECK(xml.find("<shares>512</shares>") != std::string::npos);
  DomainSpec routed = lab.Spec("ppe-xml", 9);
  routed.gateway = lab.net + ".1";
  CHECK(hv.DomainXml(routed).find(absl::StrCat("gateway='", lab.net, ".1'")) != std::string::npos);

  constexpr int kContainers = 5;
  std::vector<double> ready_ms, create_ms, destroy_ms;
  for (int i = 0; i < kContainers; ++i) {
    DomainSpec spec = lab.Spec(lab.Name(i), 10 + i);
    absl::Time t0 = absl::Now();
    absl::Status created = hv.Create(spec);
    INFO(created.ToString());
    REQUIRE(created.ok());
    absl::Time t1 = absl::Now();
    absl::Status ready = WaitReady(spec.tag.ip, kPort, t0 + absl::Seconds(15));
    INFO(ready.ToString());
    REQUIRE(ready.ok());
    std::string status_line = testing::HttpStatusLine(spec.tag.ip, kPort);
    absl::Time t2 = absl::Now();
    CHECK(status_line.rfind("HTTP/1.0 200", 0) == 0);
    create_ms.push_back(Ms(t1 - t0));
    ready_ms.push_back(Ms(t2 - t0));
  }

  auto listed = hv.List();
  REQUIRE(listed.ok());
  for (int i = 0; i < kContainers; ++i) {
    const DomainInfo* d = Find(*listed, lab.Name(i));
    REQUIRE(d != nullptr);
    CHECK(d->running);
    REQUIRE(d->tag.has_value());
    CHECK(d->tag->service == "video");
    CHECK(d->tag->ip == absl::StrCat(lab.net, ".", 10 + i));
    CHECK(d->tag->registry == "lxc-test");
  }

  // Scale out the first one: memory live, 2 "vCPUs" = twice the shares.
  Inspect inspect(lab.uri);
  REQUIRE(inspect.conn != nullptr);
  CHECK(inspect.CpuShares(lab.Name(0)) == 512);
  absl::Time r0 = absl::Now();
  absl::Status resized = hv.Resize(lab.Name(0), 2, 96);
  double resize_ms = Ms(absl::Now() - r0);
  INFO(resized.ToString());
  REQUIRE(resized.ok());
  CHECK(inspect.Xml(lab.Name(0)).find("<currentMemory unit='KiB'>98304</currentMemory>") !=
        std::string::npos);
  CHECK(inspect.CpuShares(lab.Name(0)) == 1024);
  CHECK(testing::HttpStatusLine(absl::StrCat(lab.net, ".10"), kPort).rfind("HTTP/1.0 200", 0) == 0);
  CHECK(hv.Resize(lab.Name(0), 1, 512).code() == absl::StatusCode::kInvalidArgument);
  CHECK(hv.Resize(lab.Name(0), 3, 64).code() == absl::StatusCode::kInvalidArgument);
  CHECK(hv.Resize("ppe-no-such-domain", 1, 64).code() == absl::StatusCode::kNotFound);

  for (int i = 0; i < kContainers; ++i) {
    absl::Time t0 = absl::Now();
    absl::Status destroyed = hv.Destroy(lab.Name(i));
    INFO(destroyed.ToString());
    REQUIRE(destroyed.ok());
    destroy_ms.push_back(Ms(absl::Now() - t0));
    CHECK_FALSE(ProbeTcp(absl::StrCat(lab.net, ".", 10 + i), kPort, absl::Milliseconds(200)).ok());
  }
  listed = hv.List();
  REQUIRE(listed.ok());
  for (int i = 0; i < kContainers; ++i) CHECK(Find(*listed, lab.Name(i)) == nullptr);
  CHECK(hv.Destroy(lab.Name(0)).code() == absl::StatusCode::kNotFound);

  std::printf("lxc figures (%d containers, one at a time):\n", kContainers);
  for (int i = 0; i < kContainers; ++i) {
    std::printf("  %s: Create %.0f ms, Create -> HTTP 200 %.0f ms, Destroy %.0f ms\n",
                lab.Name(i).c_str(), create_ms[i], ready_ms[i], destroy_ms[i]);
  }
  std::printf("  live Resize (memory + CPU shares/quota): %.1f ms\n", resize_ms);
}

TEST_CASE("lxc: the same hypervisor object survives a libvirtd kill and restart", "[.][lxc]") {
  Lab lab;
  auto opened = LibvirtHypervisor::Open(lab.uri);
  REQUIRE(opened.ok());
  LibvirtHypervisor& hv = **opened;

  DomainSpec survivor = lab.Spec(lab.Name(20), 40);
  REQUIRE(hv.Create(survivor).ok());
  REQUIRE(WaitReady(survivor.tag.ip, kPort, absl::Now() + absl::Seconds(15)).ok());

  pid_t pid = lab.DaemonPid();
  REQUIRE(pid > 0);
  REQUIRE(kill(pid, SIGKILL) == 0);
  REQUIRE(testing::WaitFor([&] { return kill(pid, 0) != 0; }, absl::Seconds(2)));

  // Daemon down: calls fail (bounded by the reconnect attempts), the
  // container keeps serving.
  absl::Time t0 = absl::Now();
  auto while_down = hv.List();
  double down_call_ms = Ms(absl::Now() - t0);
  CHECK_FALSE(while_down.ok());
  CHECK(while_down.status().code() == absl::StatusCode::kUnavailable);
  CHECK(down_call_ms < 3000);
  CHECK(testing::HttpStatusLine(survivor.tag.ip, kPort).rfind("HTTP/1.0 200", 0) == 0);

  // Restart it the way an operator would.
  absl::Time s0 = absl::Now();
  std::string cmd = absl::StrCat("PPE_LXC_NO_INSTALL=1 '", lab.setup, "' '", lab.run, "' '",
                                 lab.bridge, "' '", lab.net, ".1/24' >/dev/null");
  REQUIRE(std::system(cmd.c_str()) == 0);
  double restart_ms = Ms(absl::Now() - s0);
  REQUIRE(lab.DaemonPid() != pid);

  // The same object: it reconnects, finds the survivor, and works as before.
  int before = hv.reconnects();
  absl::Time l0 = absl::Now();
  auto listed = hv.List();
  double reconnect_ms = Ms(absl::Now() - l0);
  INFO(listed.status().ToString());
  REQUIRE(listed.ok());
  CHECK(hv.reconnects() > before);
  const DomainInfo* d = Find(*listed, survivor.name);
  REQUIRE(d != nullptr);
  CHECK(d->running);
  REQUIRE(d->tag.has_value());
  CHECK(d->tag->ip == survivor.tag.ip);

  DomainSpec fresh = lab.Spec(lab.Name(21), 41);
  absl::Time c0 = absl::Now();
  REQUIRE(hv.Create(fresh).ok());
  double fresh_create_ms = Ms(absl::Now() - c0);
  REQUIRE(WaitReady(fresh.tag.ip, kPort, absl::Now() + absl::Seconds(15)).ok());
  double fresh_ready_ms = Ms(absl::Now() - c0);
  CHECK(testing::HttpStatusLine(fresh.tag.ip, kPort).rfind("HTTP/1.0 200", 0) == 0);
  REQUIRE(hv.Resize(survivor.name, 1, 100).ok());
  REQUIRE(hv.Destroy(fresh.name).ok());
  REQUIRE(hv.Destroy(survivor.name).ok());
  listed = hv.List();
  REQUIRE(listed.ok());
  CHECK(Find(*listed, survivor.name) == nullptr);
  CHECK(Find(*listed, fresh.name) == nullptr);

  std::printf(
      "libvirtd restart: call while down failed after %.0f ms; setup.sh restart %.0f ms; "
      "first call after restart (reconnect) %.1f ms; new container: Create %.0f ms, "
      "Create -> HTTP-ready %.0f ms\n",
      down_call_ms, restart_ms, reconnect_ms, fresh_create_ms, fresh_ready_ms);
}

TEST_CASE("test:///default: Resize changes vCPUs and memory live within the maximums",
          "[testdriver]") {
  auto opened = LibvirtHypervisor::Open("test:///default");
  REQUIRE(opened.ok());
  LibvirtHypervisor& hv = **opened;
  CHECK(hv.capabilities().live_vcpus);
  CHECK_FALSE(hv.capabilities().live_cpu_shares);
  DomainSpec spec{.name = "ppe-resize-t1",
                  .vcpus = 1,
                  .max_vcpus = 4,
                  .memory_mib = 256,
                  .max_memory_mib = 1024,
                  .tag = {.profile = "p", .service = "video", .ip = "10.213.0.5"}};
  REQUIRE(hv.Create(spec).ok());
  REQUIRE(hv.Resize(spec.name, 3, 768).ok());
  virConnectPtr conn = virConnectOpen("test:///default");  // shares the driver's state
  REQUIRE(conn != nullptr);
  virDomainPtr dom = virDomainLookupByName(conn, spec.name.c_str());
  REQUIRE(dom != nullptr);
  virDomainInfo info;
  REQUIRE(virDomainGetInfo(dom, &info) == 0);
  CHECK(info.nrVirtCpu == 3);
  CHECK(info.memory == 768u * 1024);
  virDomainFree(dom);
  virConnectClose(conn);
  CHECK(hv.Resize(spec.name, 2, 2048).code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(hv.Resize(spec.name, 8, 256).ok());
  CHECK(hv.Resize("ppe-none", 1, 256).code() == absl::StatusCode::kNotFound);
  REQUIRE(hv.Destroy(spec.name).ok());
  // A live test:// connection is never reopened: its state would be lost.
  CHECK(hv.reconnects() == 0);
}

TEST_CASE("readiness probe: refused, unreachable and malformed targets", "[testdriver]") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  // Bound, not listening: refused.
  CHECK(absl::IsUnavailable(ProbeTcp("127.0.0.1", port, absl::Seconds(1))));
  absl::Time t0 = absl::Now();
  absl::Status waited = WaitReady("127.0.0.1", port, t0 + absl::Milliseconds(200));
  CHECK(absl::IsDeadlineExceeded(waited));
  CHECK(absl::Now() - t0 < absl::Seconds(1));
  REQUIRE(listen(fd, 4) == 0);
  CHECK(ProbeTcp("127.0.0.1", port, absl::Seconds(1)).ok());
  CHECK(WaitReady("127.0.0.1", port, absl::Now() + absl::Seconds(1)).ok());
  close(fd);
  CHECK(absl::IsInvalidArgument(ProbeTcp("not-an-ip", 80, absl::Seconds(1))));
  CHECK(absl::IsInvalidArgument(ProbeTcp("127.0.0.1", 0, absl::Seconds(1))));
}

}  // namespace
}  // namespace ppe::vm
