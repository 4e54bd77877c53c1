#pragma once

#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/cpt/attributes.h"

namespace ppe::registry {

enum class VmState { kProvisioning, kReady, kFailed, kReleased };
absl::string_view VmStateName(VmState s);

struct VmRecord {
  std::string name;  // libvirt domain name
  std::string cpt;
  std::string service;
  std::string workload_class;
  std::string ip;
  std::string mac;
  VmState state = VmState::kProvisioning;
  absl::Time created;
};

struct ProfileRecord {
  std::string cpt;
  cpt::Attributes attributes;
  std::string origin;  // "admin" (IssueCpt) or "dns" (derived from a query)
  absl::Time created;
  absl::Time last_seen;
  // service -> names of the VMs in the pool, in allocation order
  absl::flat_hash_map<std::string, std::vector<std::string>> pools;
};

// The CPT -> profile -> VM pool index. Every read on the lookup path is a
// shared-lock hash look-up; nothing here blocks on I/O.
class Registry {
 public:
  // Registers the profile if new; returns true when it was created.
  bool RegisterProfile(const std::string& cpt, const cpt::Attributes& attributes,
                       std::string origin, absl::Time now);
  bool HasProfile(const std::string& cpt) const;
  // Addresses of the ready VMs of (cpt, service); empty when none. Updates last_seen.
  std::vector<std::string> ReadyAddresses(const std::string& cpt, const std::string& service,
                                          absl::Time now);

  // A VM joins its profile's pool (the profile must exist).
  absl::Status AddVm(VmRecord vm);
  absl::Status SetVmState(const std::string& name, VmState state);

  std::optional<ProfileRecord> GetProfile(const std::string& cpt) const;
  std::vector<ProfileRecord> ListProfiles() const;
  std::vector<VmRecord> ListVms(const std::string& cpt_filter = "") const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, ProfileRecord> profiles_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, VmRecord> vms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::registry
