#include "ppe-service/replay/simulated_hypervisor.h"

namespace ppe::replay {

absl::Status SimulatedHypervisor::Create(const vm::DomainSpec& spec) {
  absl::MutexLock lock(&mu_);
  if (domains_.contains(spec.name)) return absl::AlreadyExistsError("domain exists");
  domains_[spec.name] = spec.tag;
  boot_seconds_[spec.name] = boot_.At(static_cast<size_t>(created_++));
  return absl::OkStatus();
}

absl::Status SimulatedHypervisor::Destroy(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  return domains_.erase(std::string(name)) ? absl::OkStatus() : absl::NotFoundError("no domain");
}

absl::StatusOr<std::vector<vm::DomainInfo>> SimulatedHypervisor::List() {
  absl::MutexLock lock(&mu_);
  std::vector<vm::DomainInfo> out;
  for (const auto& [name, tag] : domains_) out.push_back({name, true, tag});
  return out;
}

absl::Status SimulatedHypervisor::Resize(absl::string_view name, unsigned, unsigned) {
  absl::MutexLock lock(&mu_);
  return domains_.contains(std::string(name)) ? absl::OkStatus() : absl::NotFoundError("no domain");
}

double SimulatedHypervisor::BootSeconds(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = boot_seconds_.find(name);
  return it == boot_seconds_.end() ? -1 : it->second;
}

int SimulatedHypervisor::created() const {
  absl::MutexLock lock(&mu_);
  return created_;
}

}  // namespace ppe::replay
