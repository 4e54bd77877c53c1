#include "ppe-service/vm/hosts_from_config.h"

#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/vm/libvirt_hypervisor.h"

namespace ppe::vm {

absl::StatusOr<Hosts> HostsFromConfig(const ppe::config::v1::PpeConfig& c,
                                      const HypervisorOpener& open) {
  // One host: unreachable at start-up is an error, as it always was. Several:
  // a host that is down is connected to once it is back (CheckHosts).
  const bool several = c.hosts_size() > 0;
  HypervisorOpener opener =
      open ? open
           : [several](const std::string& uri) -> absl::StatusOr<std::unique_ptr<Hypervisor>> {
    absl::StatusOr<std::unique_ptr<LibvirtHypervisor>> hv = LibvirtHypervisor::Open(uri);
    if (hv.ok()) return std::unique_ptr<Hypervisor>(std::move(*hv));
    if (!several) return hv.status();
    spdlog::warn("libvirt host {} unreachable at start-up ({}); it is used once it answers", uri,
                 hv.status().message());
    return std::unique_ptr<Hypervisor>(LibvirtHypervisor::OpenLater(uri));
  };
  Hosts out;
  out.options.grace = absl::Seconds(c.hypervisor().host_grace_s());
  if (c.hypervisor().host_check_ms() > 0) {
    out.check_interval = absl::Milliseconds(c.hypervisor().host_check_ms());
  }
  if (c.hosts_size() == 0) {
    PPE_ASSIGN_OR_RETURN(std::unique_ptr<Hypervisor> hv, opener(c.hypervisor().uri()));
    HostSpec host{.name = "default",
                  .capacity_vcpus = c.hypervisor().capacity_vcpus(),
                  .capacity_memory_mib = c.hypervisor().capacity_memory_mib(),
                  .hypervisor = hv.get()};
    PPE_ASSIGN_OR_RETURN(VmManager::Options vm_options, VmManager::OptionsFromConfig(c));
    for (const ServicePlacement& p : vm_options.services) {
      host.pools.push_back({.service = p.service,
                            .addresses = p.addresses,
                            .network = p.network,
                            .bridge = p.bridge,
                            .prefix_length = p.prefix_length,
                            .gateway = p.gateway});
    }
    out.hypervisors.push_back(std::move(hv));
    out.specs.push_back(std::move(host));
    return out;
  }
  for (const auto& h : c.hosts()) {
    absl::StatusOr<std::unique_ptr<Hypervisor>> hv = opener(h.uri());
    if (!hv.ok()) {
      return absl::Status(hv.status().code(),
                          absl::StrCat("host ", h.name(), ": ", hv.status().message()));
    }
    HostSpec host{.name = h.name(),
                  .region = h.region(),
                  .capacity_vcpus = h.capacity_vcpus(),
                  .capacity_memory_mib = h.capacity_memory_mib(),
                  .hypervisor = hv->get()};
    for (const auto& pool : h.address_pools()) {
      PPE_ASSIGN_OR_RETURN(AddressPool addresses, AddressPool::Create(pool.cidr()));
      host.pools.push_back({.service = pool.service(),
                            .addresses = std::make_shared<AddressPool>(std::move(addresses)),
                            .network = h.network(),
                            .bridge = h.bridge(),
                            .prefix_length = h.prefix_length(),
                            .gateway = h.gateway()});
    }
    out.hypervisors.push_back(std::move(*hv));
    out.specs.push_back(std::move(host));
  }
  for (const auto& d : c.region_distances()) out.distances.Set(d.from(), d.to(), d.distance());
  return out;
}

}  // namespace ppe::vm
