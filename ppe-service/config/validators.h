#pragma once

#include <string>

#include "absl/status/status.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::config {

// One check per section of a PpeConfig whose defaults are filled
// (FillDefaults). Each reads only, and refuses with INVALID_ARGUMENT
// "ORIGIN: FIELD: WHAT" naming the first bad field ("ORIGIN: " is left out
// when `origin` is empty).
absl::Status CheckTopLevel(const ppe::config::v1::PpeConfig& config, const std::string& origin);
absl::Status CheckCpt(const ppe::config::v1::CptSettings& cpt, const std::string& origin);
absl::Status CheckRegistry(const ppe::config::v1::Registry& registry, const std::string& origin);
absl::Status CheckScaler(const ppe::config::v1::Scaler& scaler, const std::string& origin);
// A known mode, idle below busy CPU (at most 100), idle and busy periods of at
// least two polls.
absl::Status CheckUsage(const ppe::config::v1::Usage& usage, const std::string& origin);
// Names required and unique; max_vcpus/max_memory_mib not below vcpus/memory_mib.
absl::Status CheckWorkloadClasses(const ppe::config::v1::PpeConfig& config,
                                  const std::string& origin);
// At least one zone; per zone: unique name, nameservers and their in-zone
// addresses, services (one label, unique, a known workload class, a valid
// address pool and fallback addresses). Warns (log) about an in-zone
// nameserver without addresses.
absl::Status CheckZones(const ppe::config::v1::PpeConfig& config, const std::string& origin);
absl::Status CheckRegions(const ppe::config::v1::PpeConfig& config, const std::string& origin);
// The `hosts` section (a config without it has one implicit host): unique
// names, a uri and a region each, address pools of configured services that
// overlap nowhere, every service placeable on some host; region distances
// only with hosts, between two regions, once per pair; host_check_ms >= 100.
// Warns (log) about a service's own pool, bridge or network, ignored with hosts.
absl::Status CheckHosts(const ppe::config::v1::PpeConfig& config, const std::string& origin);
// The `admin_auth` section and `admin_listen`, without reading any file: a
// known mode, the files each mode needs and no setting the mode would ignore,
// and a separate admin_listen for "token" and "mtls".
absl::Status CheckAdminAuth(const ppe::config::v1::PpeConfig& config, const std::string& origin);

// Every check above, in that order.
absl::Status CheckPpeConfig(const ppe::config::v1::PpeConfig& config, const std::string& origin);

}  // namespace ppe::config
