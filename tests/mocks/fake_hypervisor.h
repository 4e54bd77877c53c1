#pragma once

// A hypervisor stand-in for unit tests of timing behaviour that libvirt's test
// driver cannot show (it creates domains instantly): a configurable create
// delay and failure. Everything else is tested against real libvirt.
#include <atomic>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "ppe-service/vm/hypervisor.h"

namespace ppe::testing {

class FakeHypervisor final : public vm::Hypervisor {
 public:
  vm::HypervisorCapabilities capabilities() const override { return {}; }

  absl::Status Create(const vm::DomainSpec& spec) override {
    creates.fetch_add(1);
    absl::SleepFor(create_delay);
    if (fail) return absl::UnavailableError("fake create failure");
    absl::MutexLock lock(&mu_);
    domains_[spec.name] = spec.tag;
    return absl::OkStatus();
  }
  absl::Status Destroy(absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    return domains_.erase(std::string(name)) ? absl::OkStatus() : absl::NotFoundError("no domain");
  }
  absl::StatusOr<std::vector<vm::DomainInfo>> List() override {
    absl::MutexLock lock(&mu_);
    std::vector<vm::DomainInfo> out;
    for (const auto& [name, tag] : domains_) out.push_back({name, true, tag});
    return out;
  }
  absl::Status Resize(absl::string_view name, unsigned vcpus, unsigned memory_mib) override {
    resizes.fetch_add(1);
    absl::MutexLock lock(&mu_);
    if (!domains_.contains(std::string(name))) return absl::NotFoundError("no domain");
    sizes_[std::string(name)] = {vcpus, memory_mib};
    return absl::OkStatus();
  }
  // The last Resize of `name`: {vcpus, memory_mib}, or {0, 0}.
  std::pair<unsigned, unsigned> size(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = sizes_.find(name);
    return it == sizes_.end() ? std::pair<unsigned, unsigned>{0, 0} : it->second;
  }

  absl::Duration create_delay = absl::ZeroDuration();
  std::atomic<bool> fail{false};
  std::atomic<int> creates{0};
  std::atomic<int> resizes{0};

 private:
  absl::Mutex mu_;
  std::map<std::string, vm::VmTag> domains_;
  std::map<std::string, std::pair<unsigned, unsigned>> sizes_;
};

}  // namespace ppe::testing
