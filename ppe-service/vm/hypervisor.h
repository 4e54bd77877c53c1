#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ppe::vm {

// PPE's tag on every domain it creates, so a restarted PPE can re-adopt its VMs
// and destroy the ones nobody owns. Stored as libvirt <metadata>.
struct VmTag {
  std::string profile;  // fingerprint of the owning CPT (never the CPT itself)
  std::string service;
  std::string ip;
  std::string mac;
  std::string network;   // libvirt network holding its DHCP host entry; may be empty
  std::string registry;  // instance id of the registry that owns it
};

struct DomainSpec {
  std::string name;
  unsigned vcpus = 1;
  unsigned max_vcpus = 1;
  unsigned memory_mib = 256;
  unsigned max_memory_mib = 256;
  VmTag tag;  // tag.network: libvirt network for the NIC and a DHCP host entry
};

struct DomainInfo {
  std::string name;
  bool running = false;
  std::optional<VmTag> tag;  // absent for domains that are not PPE's
};

struct HypervisorCapabilities {
  bool live_vcpus = false;
  bool live_memory = false;
  bool real_network = false;  // addresses answer probes (false for test:///)
};

// What PPE needs from a hypervisor. LibvirtHypervisor is the real one (test:///,
// lxc:///, qemu:///); the trace replay uses a simulated one behind this interface.
class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  virtual HypervisorCapabilities capabilities() const = 0;
  // Defines and starts the domain (and its DHCP host entry). Blocking.
  virtual absl::Status Create(const DomainSpec& spec) = 0;
  // Stops and undefines the domain, removes its DHCP host entry. Blocking.
  virtual absl::Status Destroy(absl::string_view name) = 0;
  // Every domain on the host, with PPE's tag where it has one.
  virtual absl::StatusOr<std::vector<DomainInfo>> List() = 0;
};

}  // namespace ppe::vm
