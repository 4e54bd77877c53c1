#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/vm/hypervisor.h"
#include "ppe-service/vm/placement.h"
#include "ppe-service/vm/vm_manager.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::vm {

// The hypervisor hosts of a validated config, their connections open: each
// `hosts` entry, or (none given) one implicit host "default" from
// `hypervisor` with each service's own address pool and network, exactly as
// a single-host config always ran.
struct Hosts {
  std::vector<std::unique_ptr<Hypervisor>> hypervisors;  // owned; specs point into them
  std::vector<HostSpec> specs;
  RegionDistances distances;
  HostOptions options;
  absl::Duration check_interval = absl::Seconds(2);
};

// Opens a connection to `uri` (LibvirtHypervisor::Open by default).
using HypervisorOpener =
    std::function<absl::StatusOr<std::unique_ptr<Hypervisor>>(const std::string& uri)>;

absl::StatusOr<Hosts> HostsFromConfig(const ppe::config::v1::PpeConfig& config,
                                      const HypervisorOpener& open = {});

}  // namespace ppe::vm
