#include "ppe-service/vm/libvirt_hypervisor.h"

#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::vm {
namespace {

// The last libvirt error of this thread as a status: a missing domain is
// NOT_FOUND, a request beyond a domain's limits INVALID_ARGUMENT, something the
// driver cannot do FAILED_PRECONDITION, anything else (the daemon, the RPC)
// UNAVAILABLE, which is what makes WithConnection check the connection.
absl::Status LibvirtError(absl::string_view what) {
  virErrorPtr err = virGetLastError();
  std::string text =
      absl::StrCat(what, ": ", err && err->message ? err->message : "unknown libvirt error");
  switch (err ? err->code : VIR_ERR_OK) {
    case VIR_ERR_NO_DOMAIN:
      return absl::NotFoundError(text);
    case VIR_ERR_INVALID_ARG:
      return absl::InvalidArgumentError(text);
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_CONFIG_UNSUPPORTED:
    case VIR_ERR_OPERATION_UNSUPPORTED:
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
      return absl::FailedPreconditionError(text);
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
      return absl::InvalidArgumentError(text);
    default:
      return absl::UnavailableError(text);
  }
}

// libvirt prints every error to stderr by default; we report them ourselves.
void QuietErrors(void*, virErrorPtr) {}

// The default event loop runs on its own thread for the life of the process:
// lifecycle events and keepalives need it, and it must exist before any open.
void StartEventLoopOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, QuietErrors);
    // libvirt's remote driver write()s to the daemon's socket: a libvirtd that
    // dies mid-write (a lost host) would raise SIGPIPE and kill this process
    // without a word. Its callers see the write fail (EPIPE) instead.
    signal(SIGPIPE, SIG_IGN);
    if (virEventRegisterDefaultImpl() < 0) {
      spdlog::warn("libvirt: cannot register the default event loop");
      return;
    }
    std::thread([] {
      while (virEventRunDefaultImpl() == 0) {
      }
    }).detach();
  });
}

std::string XmlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string AttributeValue(absl::string_view xml, absl::string_view name) {
  for (char quote : {'\'', '"'}) {
    std::string needle = absl::StrCat(" ", name, "=", std::string(1, quote));
    size_t start = xml.find(needle);
    if (start == absl::string_view::npos) continue;
    start += needle.size();
    size_t end = xml.find(quote, start);
    if (end == absl::string_view::npos) return "";
    return std::string(xml.substr(start, end - start));
  }
  return "";
}

}  // namespace

std::optional<VmTag> ParseVmTag(absl::string_view xml) {
  VmTag tag{.profile = AttributeValue(xml, "profile"),
            .service = AttributeValue(xml, "service"),
            .ip = AttributeValue(xml, "ip"),
            .mac = AttributeValue(xml, "mac"),
            .network = AttributeValue(xml, "network"),
            .registry = AttributeValue(xml, "registry")};
  if (tag.service.empty()) return std::nullopt;
  return tag;
}

// A counted reference to a connection (virConnectRef / virConnectClose).
class LibvirtHypervisor::ConnRef {
 public:
  explicit ConnRef(virConnectPtr conn) : conn_(conn) { virConnectRef(conn_); }
  ConnRef(ConnRef&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}
  ConnRef& operator=(ConnRef&&) = delete;
  ~ConnRef() {
    if (conn_ != nullptr) virConnectClose(conn_);
  }
  virConnectPtr get() const { return conn_; }

 private:
  virConnectPtr conn_;
};

absl::StatusOr<std::unique_ptr<LibvirtHypervisor>> LibvirtHypervisor::Open(const std::string& uri) {
  StartEventLoopOnce();
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn == nullptr) return LibvirtError(absl::StrCat("connect to ", uri));
  const char* type = virConnectGetType(conn);
  std::string driver = absl::AsciiStrToLower(type ? type : "");
  return std::unique_ptr<LibvirtHypervisor>(new LibvirtHypervisor(uri, conn, driver));
}

std::unique_ptr<LibvirtHypervisor> LibvirtHypervisor::OpenLater(const std::string& uri) {
  StartEventLoopOnce();
  std::string driver = absl::AsciiStrToLower(uri.substr(0, uri.find_first_of(":+")));
  return std::unique_ptr<LibvirtHypervisor>(new LibvirtHypervisor(uri, nullptr, driver));
}

LibvirtHypervisor::LibvirtHypervisor(std::string uri, virConnectPtr conn, std::string driver)
    : uri_(std::move(uri)), driver_(std::move(driver)), conn_(conn) {
  caps_.live_memory = true;
  caps_.live_vcpus = driver_ != "lxc";
  caps_.live_cpu_shares = driver_ == "lxc";
  caps_.real_network = driver_ != "test";
  absl::MutexLock lock(&mu_);
  WatchLocked();
}

LibvirtHypervisor::~LibvirtHypervisor() {
  absl::MutexLock lock(&mu_);
  if (conn_ == nullptr) return;
  if (watched_.exchange(nullptr) != nullptr) virConnectUnregisterCloseCallback(conn_, OnClose);
  virConnectClose(conn_);
}

void LibvirtHypervisor::OnClose(virConnectPtr conn, int reason, void* opaque) {
  auto* self = static_cast<LibvirtHypervisor*>(opaque);
  if (self->watched_.load() != conn) return;
  self->closed_.store(true);
  // Only a flag and a log line: this runs on libvirt's event-loop thread.
  spdlog::warn("libvirt: connection to {} closed (reason {})", self->uri_, reason);
}

void LibvirtHypervisor::WatchLocked() {
  closed_.store(false);
  if (conn_ == nullptr) return;  // OpenLater: not connected yet
  // The test driver has neither close callbacks nor keepalive: both fail, harmlessly.
  if (virConnectRegisterCloseCallback(conn_, OnClose, this, nullptr) == 0) {
    watched_.store(conn_);
  } else {
    watched_.store(nullptr);
  }
  if (driver_ != "test") virConnectSetKeepAlive(conn_, 2, 3);
  virResetLastError();
}

bool LibvirtHypervisor::DeadLocked() {
  return conn_ == nullptr || closed_.load() || virConnectIsAlive(conn_) == 0;
}

absl::Status LibvirtHypervisor::ReopenLocked() {
  absl::Status last;
  absl::Duration backoff = kOpenBackoff;
  for (int attempt = 0; attempt < kOpenAttempts; ++attempt) {
    if (attempt > 0) {
      absl::SleepFor(backoff);
      backoff *= 2;
    }
    virConnectPtr fresh = virConnectOpen(uri_.c_str());
    if (fresh == nullptr) {
      last = LibvirtError(absl::StrCat("reconnect to ", uri_));
      spdlog::warn("libvirt: {} (attempt {}/{})", last.message(), attempt + 1, kOpenAttempts);
      continue;
    }
    if (conn_ != nullptr) {
      if (watched_.exchange(nullptr) != nullptr) virConnectUnregisterCloseCallback(conn_, OnClose);
      virConnectClose(conn_);  // in-flight calls keep their own references
    }
    conn_ = fresh;
    WatchLocked();
    reconnects_.fetch_add(1);
    spdlog::info("libvirt: reconnected to {} (attempt {})", uri_, attempt + 1);
    return absl::OkStatus();
  }
  return last;
}

absl::StatusOr<LibvirtHypervisor::ConnRef> LibvirtHypervisor::Acquire() {
  absl::MutexLock lock(&mu_);
  if (DeadLocked()) {
    PPE_RETURN_IF_ERROR(ReopenLocked());
  }
  return ConnRef(conn_);
}

absl::Status LibvirtHypervisor::WithConnection(
    absl::string_view what, const std::function<absl::Status(virConnectPtr, bool)>& op) {
  absl::Status status;
  for (int round = 0; round < 2; ++round) {
    PPE_ASSIGN_OR_RETURN(ConnRef conn, Acquire());
    status = op(conn.get(), round > 0);
    if (status.ok() || !absl::IsUnavailable(status)) return status;
    // Did the daemon go away under the call? Then once more on a new connection.
    if (virConnectIsAlive(conn.get()) != 0 && !closed_.load()) return status;
    spdlog::warn("libvirt: {} failed on a dead connection ({}); retrying", what, status.message());
    absl::MutexLock lock(&mu_);
    if (conn_ == conn.get()) closed_.store(true);
  }
  return status;
}

std::string LibvirtHypervisor::DomainXml(const DomainSpec& spec) const {
  const bool lxc = driver_ == "lxc";
  const unsigned shares_per_vcpu = spec.cpu_shares > 0
                                       ? std::max(2u, spec.cpu_shares / std::max(1u, spec.vcpus))
                                       : kSharesPerVcpu;
  std::string metadata = absl::StrFormat(
      "<ppe:vm xmlns:ppe='%s' profile='%s' service='%s' ip='%s' mac='%s' network='%s' "
      "registry='%s' max-vcpus='%d' shares-per-vcpu='%d'/>",
      kMetadataNs, XmlEscape(spec.tag.profile), XmlEscape(spec.tag.service), XmlEscape(spec.tag.ip),
      XmlEscape(spec.tag.mac), XmlEscape(spec.tag.network), XmlEscape(spec.tag.registry),
      std::max(spec.vcpus, spec.max_vcpus), shares_per_vcpu);
  std::string nic;
  if (!spec.bridge.empty()) {
    std::string addressing;
    if (lxc && !spec.tag.ip.empty()) {
      addressing = absl::StrFormat("<ip address='%s' prefix='%d'/>", XmlEscape(spec.tag.ip),
                                   spec.prefix_length);
      if (!spec.gateway.empty()) {
        addressing +=
            absl::StrFormat("<route family='ipv4' address='0.0.0.0' prefix='0' gateway='%s'/>",
                            XmlEscape(spec.gateway));
      }
    }
    nic = absl::StrFormat(
        "<interface type='bridge'><source bridge='%s'/><mac address='%s'/>%s%s</interface>",
        XmlEscape(spec.bridge), XmlEscape(spec.tag.mac), addressing,
        driver_ == "qemu" ? "<model type='virtio'/>" : "");
  } else if (!spec.tag.network.empty()) {
    nic = absl::StrFormat(
        "<interface type='network'><source network='%s'/><mac address='%s'/></interface>",
        XmlEscape(spec.tag.network), XmlEscape(spec.tag.mac));
  }
  if (!lxc) {
    return absl::StrFormat(
        "<domain type='%s'><name>%s</name>"
        "<memory unit='MiB'>%d</memory><currentMemory unit='MiB'>%d</currentMemory>"
        "<vcpu current='%d'>%d</vcpu><os><type>hvm</type></os><metadata>%s</metadata>"
        "<devices>%s</devices></domain>",
        driver_, XmlEscape(spec.name), spec.max_memory_mib, spec.memory_mib, spec.vcpus,
        spec.max_vcpus, metadata, nic);
  }
  // An application container: tini as init (it reaps, and forwards the stop
  // signal, so a destroy takes ~0.3 s instead of ~2 s), the host's root
  // read-only, the workload's argv, CPU shares and a quota of `vcpus` CPUs.
  std::vector<std::string> argv = spec.command;
  if (argv.empty()) argv = {"/bin/sleep", "infinity"};
  std::string initargs = "<initarg>--</initarg>";
  for (const std::string& arg : argv)
    absl::StrAppend(&initargs, "<initarg>", XmlEscape(arg), "</initarg>");
  return absl::StrFormat(
      "<domain type='lxc'><name>%s</name>"
      "<memory unit='MiB'>%d</memory><currentMemory unit='MiB'>%d</currentMemory>"
      "<vcpu>%d</vcpu>"
      "<os><type>exe</type><init>/usr/bin/tini</init>%s</os>"
      "<cputune><shares>%d</shares><period>%d</period><quota>%d</quota></cputune>"
      "<metadata>%s</metadata>"
      "<devices><filesystem type='mount'><source dir='/'/><target dir='/'/><readonly/></filesystem>"
      "%s<console type='pty'/></devices></domain>",
      XmlEscape(spec.name), std::max(spec.max_memory_mib, spec.memory_mib), spec.memory_mib,
      std::max(1u, spec.vcpus), initargs, shares_per_vcpu * std::max(1u, spec.vcpus), kCpuPeriodUs,
      kCpuPeriodUs * std::max(1u, spec.vcpus), metadata, nic);
}

absl::Status LibvirtHypervisor::UpdateDhcpHost(virConnectPtr conn, absl::string_view name,
                                               const VmTag& tag, bool add) {
  if (tag.network.empty()) return absl::OkStatus();
  virNetworkPtr net = virNetworkLookupByName(conn, tag.network.c_str());
  if (net == nullptr) return LibvirtError(absl::StrCat("network ", tag.network));
  std::string host = absl::StrFormat("<host mac='%s' name='%s' ip='%s'/>", XmlEscape(tag.mac),
                                     XmlEscape(name), XmlEscape(tag.ip));
  int rc = virNetworkUpdate(
      net, add ? VIR_NETWORK_UPDATE_COMMAND_ADD_LAST : VIR_NETWORK_UPDATE_COMMAND_DELETE,
      VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, host.c_str(), VIR_NETWORK_UPDATE_AFFECT_CURRENT);
  virNetworkFree(net);
  if (rc < 0) return LibvirtError(absl::StrCat("DHCP host for ", name));
  return absl::OkStatus();
}

absl::Status LibvirtHypervisor::Create(const DomainSpec& spec) {
  // A bridged NIC takes a static address: no DHCP host entry then.
  DomainSpec effective = spec;
  if (!effective.bridge.empty()) effective.tag.network.clear();
  return WithConnection(absl::StrCat("create ", spec.name), [&](virConnectPtr conn, bool retry) {
    return CreateOn(conn, effective, retry);
  });
}

absl::Status LibvirtHypervisor::CreateOn(virConnectPtr conn, const DomainSpec& spec, bool retry) {
  if (retry) {
    // The first attempt's connection died: it may have defined (or even
    // started) the domain. Ours, same address: finish it; else start over.
    if (virDomainPtr dom = virDomainLookupByName(conn, spec.name.c_str())) {
      std::optional<VmTag> tag;
      if (char* md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs, 0)) {
        tag = ParseVmTag(md);
        free(md);
      }
      bool ours = tag && tag->ip == spec.tag.ip && tag->mac == spec.tag.mac;
      int active = virDomainIsActive(dom);
      virDomainFree(dom);
      if (ours && active == 1) return absl::OkStatus();
      if (absl::Status s = DestroyOn(conn, spec.name); !s.ok() && !absl::IsNotFound(s)) return s;
    }
    virResetLastError();
  }
  std::string xml = DomainXml(spec);
  PPE_RETURN_IF_ERROR(UpdateDhcpHost(conn, spec.name, spec.tag, true));
  virDomainPtr dom = virDomainDefineXML(conn, xml.c_str());
  if (dom == nullptr) {
    absl::Status err = LibvirtError(absl::StrCat("define ", spec.name));
    UpdateDhcpHost(conn, spec.name, spec.tag, false).IgnoreError();
    return err;
  }
  if (virDomainCreate(dom) < 0) {
    absl::Status err = LibvirtError(absl::StrCat("start ", spec.name));
    virDomainUndefine(dom);
    virDomainFree(dom);
    UpdateDhcpHost(conn, spec.name, spec.tag, false).IgnoreError();
    return err;
  }
  virDomainFree(dom);
  return absl::OkStatus();
}

absl::Status LibvirtHypervisor::Destroy(absl::string_view name) {
  return WithConnection(absl::StrCat("destroy ", name),
                        [&](virConnectPtr conn, bool) { return DestroyOn(conn, name); });
}

absl::Status LibvirtHypervisor::DestroyOn(virConnectPtr conn, absl::string_view name) {
  virDomainPtr dom = virDomainLookupByName(conn, std::string(name).c_str());
  if (dom == nullptr) {
    absl::Status err = LibvirtError(absl::StrCat("domain ", name));
    return absl::IsUnavailable(err) ? err : absl::NotFoundError(absl::StrCat("domain ", name));
  }
  std::optional<VmTag> tag;
  if (char* md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs, 0)) {
    tag = ParseVmTag(md);
    free(md);
  }
  if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0) {
    absl::Status err = LibvirtError(absl::StrCat("destroy ", name));
    virDomainFree(dom);
    return err;
  }
  // LXC has no managed save and refuses the flag.
  int rc = virDomainUndefineFlags(dom, driver_ == "lxc" ? 0 : VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
  virDomainFree(dom);
  if (rc < 0) return LibvirtError(absl::StrCat("undefine ", name));
  if (tag) return UpdateDhcpHost(conn, name, *tag, false);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DomainInfo>> LibvirtHypervisor::List() {
  std::vector<DomainInfo> out;
  absl::Status status = WithConnection("list domains", [&](virConnectPtr conn, bool) {
    out.clear();
    virDomainPtr* domains = nullptr;
    int n = virConnectListAllDomains(conn, &domains, 0);
    if (n < 0) return LibvirtError("list domains");
    out.reserve(n);
    for (int i = 0; i < n; ++i) {
      DomainInfo info;
      if (const char* name = virDomainGetName(domains[i])) info.name = name;
      info.running = virDomainIsActive(domains[i]) == 1;
      if (char* md =
              virDomainGetMetadata(domains[i], VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs, 0)) {
        info.tag = ParseVmTag(md);
        free(md);
      }
      virDomainFree(domains[i]);
      out.push_back(std::move(info));
    }
    free(domains);
    virResetLastError();  // a domain without PPE's metadata is not an error
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status LibvirtHypervisor::Resize(absl::string_view name, unsigned vcpus,
                                       unsigned memory_mib) {
  if (vcpus == 0 || memory_mib == 0) {
    return absl::InvalidArgumentError("resize needs at least 1 vCPU and 1 MiB");
  }
  return WithConnection(absl::StrCat("resize ", name), [&](virConnectPtr conn, bool) {
    return ResizeOn(conn, name, vcpus, memory_mib);
  });
}

absl::Status LibvirtHypervisor::ResizeOn(virConnectPtr conn, absl::string_view name, unsigned vcpus,
                                         unsigned memory_mib) {
  virDomainPtr dom = virDomainLookupByName(conn, std::string(name).c_str());
  if (dom == nullptr) {
    absl::Status err = LibvirtError(absl::StrCat("domain ", name));
    return absl::IsUnavailable(err) ? err : absl::NotFoundError(absl::StrCat("domain ", name));
  }
  std::unique_ptr<virDomain, int (*)(virDomainPtr)> guard(dom, virDomainFree);
  const unsigned long max_kib = virDomainGetMaxMemory(dom);
  if (max_kib == 0) return LibvirtError(absl::StrCat("maximum memory of ", name));
  if (static_cast<unsigned long>(memory_mib) * 1024 > max_kib) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "resize %s: %d MiB is above its maximum of %d MiB", name, memory_mib, max_kib / 1024));
  }
  if (caps_.live_vcpus) {
    if (virDomainSetVcpusFlags(dom, vcpus, VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return LibvirtError(absl::StrFormat("set %s to %d vCPUs", name, vcpus));
    }
  } else {
    // LXC: the vCPU count becomes CPU shares and a quota of `vcpus` CPUs.
    unsigned max_vcpus = 0, shares_per_vcpu = kSharesPerVcpu;
    if (char* md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs, 0)) {
      std::string xml(md);
      free(md);
      (void)absl::SimpleAtoi(AttributeValue(xml, "max-vcpus"), &max_vcpus);
      if (unsigned v = 0; absl::SimpleAtoi(AttributeValue(xml, "shares-per-vcpu"), &v) && v > 0) {
        shares_per_vcpu = v;
      }
    }
    virResetLastError();
    if (max_vcpus > 0 && vcpus > max_vcpus) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "resize %s: %d vCPUs is above its maximum of %d", name, vcpus, max_vcpus));
    }
    virTypedParameter params[2] = {};
    absl::SNPrintF(params[0].field, VIR_TYPED_PARAM_FIELD_LENGTH, "%s",
                   VIR_DOMAIN_SCHEDULER_CPU_SHARES);
    params[0].type = VIR_TYPED_PARAM_ULLONG;
    params[0].value.ul = static_cast<unsigned long long>(shares_per_vcpu) * vcpus;
    absl::SNPrintF(params[1].field, VIR_TYPED_PARAM_FIELD_LENGTH, "%s",
                   VIR_DOMAIN_SCHEDULER_VCPU_QUOTA);
    params[1].type = VIR_TYPED_PARAM_LLONG;
    params[1].value.l = static_cast<long long>(kCpuPeriodUs) * vcpus;
    if (virDomainSetSchedulerParametersFlags(dom, params, 2, VIR_DOMAIN_AFFECT_LIVE) < 0) {
      return LibvirtError(absl::StrFormat("set CPU shares of %s for %d vCPUs", name, vcpus));
    }
  }
  if (virDomainSetMemoryFlags(dom, static_cast<unsigned long>(memory_mib) * 1024,
                              VIR_DOMAIN_AFFECT_LIVE) < 0) {
    return LibvirtError(absl::StrFormat("set %s to %d MiB", name, memory_mib));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DomainStats>> LibvirtHypervisor::Stats() {
  std::vector<DomainStats> out;
  absl::Status status = WithConnection("domain stats", [&](virConnectPtr conn, bool) {
    out.clear();
    if (!bulk_stats_unsupported_.load()) {
      absl::Status bulk = BulkStatsOn(conn, out);
      if (!absl::IsFailedPrecondition(bulk)) return bulk;
      spdlog::info("libvirt: {} has no bulk domain stats ({}); reading them per domain", driver_,
                   bulk.message());
      bulk_stats_unsupported_.store(true);
      out.clear();
    }
    return PerDomainStatsOn(conn, out);
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status LibvirtHypervisor::BulkStatsOn(virConnectPtr conn, std::vector<DomainStats>& out) {
  virDomainStatsRecordPtr* records = nullptr;
  const unsigned groups = VIR_DOMAIN_STATS_CPU_TOTAL | VIR_DOMAIN_STATS_BALLOON |
                          VIR_DOMAIN_STATS_VCPU | VIR_DOMAIN_STATS_INTERFACE;
  int n =
      virConnectGetAllDomainStats(conn, groups, &records, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
  if (n < 0) return LibvirtError("get all domain stats");
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    const virDomainStatsRecordPtr r = records[i];
    DomainStats st;
    if (const char* name = virDomainGetName(r->dom)) st.name = name;
    unsigned long long ull = 0;
    unsigned int u = 0;
    if (virTypedParamsGetULLong(r->params, r->nparams, "cpu.time", &ull) == 1) st.cpu_time_ns = ull;
    if (virTypedParamsGetULLong(r->params, r->nparams, "balloon.current", &ull) == 1) {
      st.memory_kib = ull;
    }
    if (virTypedParamsGetUInt(r->params, r->nparams, "vcpu.current", &u) == 1) st.vcpus = u;
    if (virTypedParamsGetUInt(r->params, r->nparams, "net.count", &u) == 1) {
      uint64_t rx = 0, tx = 0;
      for (unsigned j = 0; j < u; ++j) {
        if (virTypedParamsGetULLong(r->params, r->nparams,
                                    absl::StrCat("net.", j, ".rx.bytes").c_str(), &ull) == 1) {
          rx += ull;
        }
        if (virTypedParamsGetULLong(r->params, r->nparams,
                                    absl::StrCat("net.", j, ".tx.bytes").c_str(), &ull) == 1) {
          tx += ull;
        }
      }
      st.rx_bytes = rx;
      st.tx_bytes = tx;
    }
    out.push_back(std::move(st));
  }
  virDomainStatsRecordListFree(records);
  virResetLastError();
  return absl::OkStatus();
}

absl::Status LibvirtHypervisor::PerDomainStatsOn(virConnectPtr conn,
                                                 std::vector<DomainStats>& out) {
  virDomainPtr* domains = nullptr;
  int n = virConnectListAllDomains(conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) return LibvirtError("list running domains");
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    virDomainPtr dom = domains[i];
    DomainStats st;
    if (const char* name = virDomainGetName(dom)) st.name = name;
    virDomainInfo info{};
    if (virDomainGetInfo(dom, &info) == 0) {
      st.cpu_time_ns = info.cpuTime;
      st.vcpus = info.nrVirtCpu;
      st.memory_kib = info.memory;
    }
    // The host side of each NIC is its <target dev='...'/> in the live XML.
    if (char* xml = virDomainGetXMLDesc(dom, 0)) {
      absl::string_view rest(xml);
      uint64_t rx = 0, tx = 0;
      bool complete = true;
      for (size_t at = rest.find("<interface "); at != absl::string_view::npos;
           at = rest.find("<interface ", at + 1)) {
        size_t end = rest.find("</interface>", at);
        absl::string_view nic = rest.substr(at, end == absl::string_view::npos ? end : end - at);
        size_t target = nic.find("<target ");
        std::string dev =
            target == absl::string_view::npos ? "" : AttributeValue(nic.substr(target), "dev");
        virDomainInterfaceStatsStruct s{};
        if (dev.empty() || virDomainInterfaceStats(dom, dev.c_str(), &s, sizeof(s)) < 0) {
          complete = false;
          continue;
        }
        rx += s.rx_bytes > 0 ? s.rx_bytes : 0;
        tx += s.tx_bytes > 0 ? s.tx_bytes : 0;
      }
      free(xml);
      if (complete) {
        st.rx_bytes = rx;
        st.tx_bytes = tx;
      }
    }
    virDomainFree(dom);
    out.push_back(std::move(st));
  }
  free(domains);
  virResetLastError();  // a domain that stopped meanwhile is not an error
  return absl::OkStatus();
}

}  // namespace ppe::vm
