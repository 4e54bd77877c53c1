#include "ppe-service/registry/registry.h"

#include <algorithm>
#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"

namespace ppe::registry {

absl::string_view VmStateName(VmState s) {
  switch (s) {
    case VmState::kProvisioning:
      return "provisioning";
    case VmState::kReady:
      return "ready";
    case VmState::kFailed:
      return "failed";
    case VmState::kReleased:
      return "released";
  }
  return "unknown";
}

bool Registry::RegisterProfile(const std::string& cpt, const cpt::Attributes& attributes,
                               std::string origin, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto [it, created] = profiles_.try_emplace(cpt);
  if (created) {
    it->second.cpt = cpt;
    it->second.attributes = attributes;
    it->second.origin = std::move(origin);
    it->second.created = now;
  }
  it->second.last_seen = now;
  return created;
}

bool Registry::HasProfile(const std::string& cpt) const {
  absl::ReaderMutexLock lock(&mu_);
  return profiles_.contains(cpt);
}

std::vector<std::string> Registry::ReadyAddresses(const std::string& cpt,
                                                  const std::string& service, absl::Time now) {
  std::vector<std::string> out;
  bool stale;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto profile = profiles_.find(cpt);
    if (profile == profiles_.end()) return out;
    stale = now - profile->second.last_seen > absl::Seconds(1);
    auto pool = profile->second.pools.find(service);
    if (pool != profile->second.pools.end()) {
      for (const std::string& name : pool->second) {
        auto vm = vms_.find(name);
        if (vm != vms_.end() && vm->second.state == VmState::kReady) out.push_back(vm->second.ip);
      }
    }
  }
  if (stale) {  // last_seen at 1 s resolution: the exclusive lock is rare
    absl::MutexLock lock(&mu_);
    if (auto profile = profiles_.find(cpt); profile != profiles_.end()) {
      profile->second.last_seen = std::max(profile->second.last_seen, now);
    }
  }
  return out;
}

absl::Status Registry::AddVm(VmRecord vm) {
  absl::MutexLock lock(&mu_);
  auto profile = profiles_.find(vm.cpt);
  if (profile == profiles_.end()) return absl::NotFoundError("no such profile");
  if (vms_.contains(vm.name)) return absl::AlreadyExistsError(absl::StrCat("VM ", vm.name));
  profile->second.pools[vm.service].push_back(vm.name);
  std::string name = vm.name;
  vms_.emplace(std::move(name), std::move(vm));
  return absl::OkStatus();
}

absl::Status Registry::SetVmState(const std::string& name, VmState state) {
  absl::MutexLock lock(&mu_);
  auto vm = vms_.find(name);
  if (vm == vms_.end()) return absl::NotFoundError(absl::StrCat("VM ", name));
  vm->second.state = state;
  return absl::OkStatus();
}

std::optional<ProfileRecord> Registry::GetProfile(const std::string& cpt) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = profiles_.find(cpt);
  if (it == profiles_.end()) return std::nullopt;
  return it->second;
}

std::vector<ProfileRecord> Registry::ListProfiles() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ProfileRecord> out;
  out.reserve(profiles_.size());
  for (const auto& [_, p] : profiles_) out.push_back(p);
  std::sort(out.begin(), out.end(),
            [](const ProfileRecord& a, const ProfileRecord& b) { return a.created < b.created; });
  return out;
}

std::vector<VmRecord> Registry::ListVms(const std::string& cpt_filter) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<VmRecord> out;
  for (const auto& [_, vm] : vms_) {
    if (cpt_filter.empty() || vm.cpt == cpt_filter) out.push_back(vm);
  }
  std::sort(out.begin(), out.end(),
            [](const VmRecord& a, const VmRecord& b) { return a.created < b.created; });
  return out;
}

}  // namespace ppe::registry
