#pragma once

#include <memory>
#include <string>
#include <thread>
#include "absl/strings/string_view.h"

#include <libvirt/libvirt.h>

#include "absl/status/statusor.h"
#include "ppe-service/vm/hypervisor.h"

namespace ppe::vm {

// The real hypervisor through libvirt: test:/// (no daemon, CI and quick start),
// lxc:/// (real containers), qemu:///system. One shared connection; libvirt's
// API is thread-safe per connection. Blocking: call from worker threads only.
class LibvirtHypervisor final : public Hypervisor {
 public:
  // XML namespace of PPE's <metadata> element.
  static constexpr const char* kMetadataNs = "https://ppe.example.test/xmlns/vm/1";

  static absl::StatusOr<std::unique_ptr<LibvirtHypervisor>> Open(const std::string& uri);
  ~LibvirtHypervisor() override;

  HypervisorCapabilities capabilities() const override { return caps_; }
  absl::Status Create(const DomainSpec& spec) override;
  absl::Status Destroy(absl::string_view name) override;
  absl::StatusOr<std::vector<DomainInfo>> List() override;

  // Domain XML for `spec` on this connection's driver (exposed for tests).
  std::string DomainXml(const DomainSpec& spec) const;

 private:
  LibvirtHypervisor(virConnectPtr conn, std::string driver);
  absl::Status UpdateDhcpHost(absl::string_view name, const VmTag& tag, bool add);

  virConnectPtr conn_;
  std::string driver_;  // "test", "lxc", "qemu"
  HypervisorCapabilities caps_;
};

// Parses PPE's metadata element, as virDomainGetMetadata returns it for PPE's
// namespace, back into a tag; nullopt if it lacks the required attributes.
std::optional<VmTag> ParseVmTag(absl::string_view metadata_xml);

}  // namespace ppe::vm
