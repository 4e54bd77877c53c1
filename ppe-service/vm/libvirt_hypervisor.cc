#include "ppe-service/vm/libvirt_hypervisor.h"

#include <libvirt/virterror.h>
#include "absl/strings/string_view.h"

#include <atomic>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ppe-service/common/log.h"

namespace ppe::vm {
namespace {

absl::Status LibvirtError(absl::string_view what) {
  const char* msg = virGetLastErrorMessage();
  return absl::UnavailableError(absl::StrCat(what, ": ", msg ? msg : "unknown libvirt error"));
}

// libvirt prints every error to stderr by default; we report them ourselves.
void QuietErrors(void*, virErrorPtr) {}

// The default event loop runs on its own thread for the life of the process:
// lifecycle events and keepalives need it, and it must exist before any open.
void StartEventLoopOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, QuietErrors);
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

absl::StatusOr<std::unique_ptr<LibvirtHypervisor>> LibvirtHypervisor::Open(const std::string& uri) {
  StartEventLoopOnce();
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn == nullptr) return LibvirtError(absl::StrCat("connect to ", uri));
  const char* type = virConnectGetType(conn);
  std::string driver = absl::AsciiStrToLower(type ? type : "");
  return std::unique_ptr<LibvirtHypervisor>(new LibvirtHypervisor(conn, driver));
}

LibvirtHypervisor::LibvirtHypervisor(virConnectPtr conn, std::string driver)
    : conn_(conn), driver_(std::move(driver)) {
  caps_.live_memory = true;
  caps_.live_vcpus = driver_ != "lxc";
  caps_.real_network = driver_ != "test";
}

LibvirtHypervisor::~LibvirtHypervisor() { virConnectClose(conn_); }

std::string LibvirtHypervisor::DomainXml(const DomainSpec& spec) const {
  std::string metadata = absl::StrFormat(
      "<ppe:vm xmlns:ppe='%s' profile='%s' service='%s' ip='%s' mac='%s' network='%s' "
      "registry='%s'/>",
      kMetadataNs, XmlEscape(spec.tag.profile), XmlEscape(spec.tag.service),
      XmlEscape(spec.tag.ip), XmlEscape(spec.tag.mac), XmlEscape(spec.tag.network),
      XmlEscape(spec.tag.registry));
  std::string nic;
  if (!spec.tag.network.empty()) {
    nic = absl::StrFormat(
        "<interface type='network'><source network='%s'/><mac address='%s'/></interface>",
        XmlEscape(spec.tag.network), spec.tag.mac);
  }
  std::string os = driver_ == "lxc" ? "<os><type>exe</type><init>/usr/bin/tini</init></os>"
                                    : "<os><type>hvm</type></os>";
  return absl::StrFormat(
      "<domain type='%s'><name>%s</name>"
      "<memory unit='MiB'>%d</memory><currentMemory unit='MiB'>%d</currentMemory>"
      "<vcpu current='%d'>%d</vcpu>%s<metadata>%s</metadata>"
      "<devices>%s</devices></domain>",
      driver_, XmlEscape(spec.name), spec.max_memory_mib, spec.memory_mib, spec.vcpus,
      spec.max_vcpus, os, metadata, nic);
}

absl::Status LibvirtHypervisor::UpdateDhcpHost(absl::string_view name, const VmTag& tag, bool add) {
  if (tag.network.empty()) return absl::OkStatus();
  virNetworkPtr net = virNetworkLookupByName(conn_, tag.network.c_str());
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
  std::string xml = DomainXml(spec);
  if (absl::Status s = UpdateDhcpHost(spec.name, spec.tag, true); !s.ok()) return s;
  virDomainPtr dom = virDomainDefineXML(conn_, xml.c_str());
  if (dom == nullptr) {
    absl::Status err = LibvirtError(absl::StrCat("define ", spec.name));
    UpdateDhcpHost(spec.name, spec.tag, false).IgnoreError();
    return err;
  }
  if (virDomainCreate(dom) < 0) {
    absl::Status err = LibvirtError(absl::StrCat("start ", spec.name));
    virDomainUndefine(dom);
    virDomainFree(dom);
    UpdateDhcpHost(spec.name, spec.tag, false).IgnoreError();
    return err;
  }
  virDomainFree(dom);
  return absl::OkStatus();
}

absl::Status LibvirtHypervisor::Destroy(absl::string_view name) {
  virDomainPtr dom = virDomainLookupByName(conn_, std::string(name).c_str());
  if (dom == nullptr) return absl::NotFoundError(absl::StrCat("domain ", name));
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
  int rc = virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
  virDomainFree(dom);
  if (rc < 0) return LibvirtError(absl::StrCat("undefine ", name));
  if (tag) return UpdateDhcpHost(name, *tag, false);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DomainInfo>> LibvirtHypervisor::List() {
  virDomainPtr* domains = nullptr;
  int n = virConnectListAllDomains(conn_, &domains, 0);
  if (n < 0) return LibvirtError("list domains");
  std::vector<DomainInfo> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    DomainInfo info;
    if (const char* name = virDomainGetName(domains[i])) info.name = name;
    info.running = virDomainIsActive(domains[i]) == 1;
    if (char* md = virDomainGetMetadata(domains[i], VIR_DOMAIN_METADATA_ELEMENT, kMetadataNs, 0)) {
      info.tag = ParseVmTag(md);
      free(md);
    }
    virDomainFree(domains[i]);
    out.push_back(std::move(info));
  }
  free(domains);
  return out;
}

}  // namespace ppe::vm
