#include "ppe-service/vm/hosts_from_config.h"

#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/vm/libvirt_hypervisor.h"

namespace ppe::vm {

absl::StatusOr<std::vector<ServicePlacement>> ServicesFromConfig(
    const ppe::config::v1::PpeConfig& c) {
  std::vector<ServicePlacement> out;
  for (const auto& zone : c.zones()) {
    for (const auto& svc : zone.services()) {
      WorkloadShape shape;
      for (const auto& w : c.workload_classes()) {
        if (w.name() == svc.workload_class()) {
          shape = {.name = w.name(),
                   .vcpus = w.vcpus(),
                   .max_vcpus = w.max_vcpus(),
                   .memory_mib = w.memory_mib(),
                   .max_memory_mib = w.max_memory_mib(),
                   .command = {w.command().begin(), w.command().end()},
                   .cpu_shares = w.cpu_shares()};
        }
      }
      ServicePlacement p{.service = svc.name(),
                         .shape = shape,
                         .max_vms = c.limits().max_vms_per_service(),
                         .warm_spares = svc.warm_spares(),
                         .probe_port = svc.probe_port()};
      if (c.hosts_size() == 0) {
        absl::StatusOr<AddressPool> pool = AddressPool::Create(svc.address_pool());
        if (!pool.ok()) return pool.status();
        p.network = svc.network();
        p.addresses = std::make_shared<AddressPool>(std::move(*pool));
        p.bridge = svc.bridge();
        p.prefix_length = svc.prefix_length();
        p.gateway = svc.gateway();
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

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
    absl::StatusOr<std::unique_ptr<Hypervisor>> hv = opener(c.hypervisor().uri());
    if (!hv.ok()) return hv.status();
    HostSpec host{.name = "default",
                  .capacity_vcpus = c.hypervisor().capacity_vcpus(),
                  .capacity_memory_mib = c.hypervisor().capacity_memory_mib(),
                  .hypervisor = hv->get()};
    absl::StatusOr<std::vector<ServicePlacement>> services = ServicesFromConfig(c);
    if (!services.ok()) return services.status();
    for (const ServicePlacement& p : *services) {
      host.pools.push_back({.service = p.service,
                            .addresses = p.addresses,
                            .network = p.network,
                            .bridge = p.bridge,
                            .prefix_length = p.prefix_length,
                            .gateway = p.gateway});
    }
    out.hypervisors.push_back(std::move(*hv));
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
      absl::StatusOr<AddressPool> addresses = AddressPool::Create(pool.cidr());
      if (!addresses.ok()) return addresses.status();
      host.pools.push_back({.service = pool.service(),
                            .addresses = std::make_shared<AddressPool>(std::move(*addresses)),
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
