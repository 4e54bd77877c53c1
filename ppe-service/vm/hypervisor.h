#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::vm {

// PPE's tag on every domain it creates, so a restarted PPE can re-adopt its VMs
// and destroy the ones nobody owns. Stored as libvirt <metadata>.
struct VmTag {
  std::string profile{};  // fingerprint of the owning CPT (never the CPT itself)
  std::string service{};
  std::string ip{};
  std::string mac{};
  std::string network{};   // libvirt network holding its DHCP host entry; may be empty
  std::string registry{};  // instance id of the registry that owns it
};

struct DomainSpec {
  std::string name{};
  unsigned vcpus = 1;
  unsigned max_vcpus = 1;
  unsigned memory_mib = 256;
  unsigned max_memory_mib = 256;
  VmTag tag{};  // tag.network: libvirt network for the NIC and a DHCP host entry
  // Real machines: the NIC joins this host bridge (instead of tag.network).
  // lxc:/// configures tag.ip/prefix_length in the container and a default
  // route via `gateway` (none if empty); a QEMU guest must configure itself.
  std::string bridge{};
  unsigned prefix_length = 24;
  std::string gateway{};
  // lxc:///: the argv the container runs under tini, with "{ip}" and "{port}"
  // already replaced by the caller. Empty: `/bin/sleep infinity`.
  std::vector<std::string> command{};
  // lxc:///: cgroup CPU shares at `vcpus` (0: 1024 per vCPU); Resize scales
  // them, and the CPU quota (`vcpus` CPUs), with the vCPU count.
  unsigned cpu_shares = 0;
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
  // Resize's vCPU count changes CPU shares and quota (lxc:///), not vCPUs.
  bool live_cpu_shares = false;
};

// Cumulative usage counters of one running domain, as the hypervisor reports
// them. A counter the driver does not report is absent (test:/// reports none;
// lxc:/// and qemu:/// report all of them).
struct DomainStats {
  std::string name{};
  std::optional<uint64_t> cpu_time_ns{};  // CPU time since the domain started, all vCPUs
  unsigned vcpus = 0;                     // vCPUs the CPU time is spread over; 0: unknown
  std::optional<uint64_t> memory_kib{};   // memory in use (balloon / cgroup)
  // Bytes through all its NICs since they were created, as the domain sees
  // them (0 for a domain without a NIC).
  std::optional<uint64_t> rx_bytes{}, tx_bytes{};
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
  // Live vertical scaling within the domain's maximums: vCPUs where
  // capabilities().live_vcpus, else CPU shares/quota where live_cpu_shares;
  // memory where live_memory. INVALID_ARGUMENT beyond the maximums. Blocking.
  virtual absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) = 0;
  // Usage counters of every running domain (PPE's or not). Blocking: one
  // bulk call where the driver has one, else a few calls per domain.
  // UNIMPLEMENTED for a hypervisor that reports no usage.
  virtual absl::StatusOr<std::vector<DomainStats>> Stats() {
    return absl::UnimplementedError("this hypervisor reports no domain usage");
  }
};

}  // namespace ppe::vm
