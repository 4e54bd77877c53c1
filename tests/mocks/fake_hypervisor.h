#pragma once

// A FAKE hypervisor, for unit tests of behaviour that libvirt's test driver
// cannot show: it creates domains instantly (here: a configurable create delay
// and failure), and it reports no usage (here: usage counters the test sets
// with SetStats, nothing measured). Everything else is tested against real
// libvirt (test:/// and lxc:///).
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
    stats_.erase(std::string(name));
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
  // Fake usage: the counters the test set for each domain (a domain without
  // any reports only its name, as libvirt's test driver does).
  absl::StatusOr<std::vector<vm::DomainStats>> Stats() override {
    if (fail_stats) return absl::UnavailableError("fake stats failure");
    absl::MutexLock lock(&mu_);
    std::vector<vm::DomainStats> out;
    for (const auto& [name, tag] : domains_) {
      auto it = stats_.find(name);
      out.push_back(it == stats_.end() ? vm::DomainStats{.name = name} : it->second);
      out.back().name = name;
    }
    return out;
  }
  // Sets the counters Stats reports for `name` (cumulative, as libvirt's).
  void SetStats(const std::string& name, vm::DomainStats stats) {
    absl::MutexLock lock(&mu_);
    stats_[name] = std::move(stats);
  }
  // Adds CPU time and network bytes to `name`'s counters.
  void AddUsage(const std::string& name, absl::Duration cpu, uint64_t rx, uint64_t tx) {
    absl::MutexLock lock(&mu_);
    vm::DomainStats& s = stats_[name];
    s.cpu_time_ns = s.cpu_time_ns.value_or(0) + absl::ToInt64Nanoseconds(cpu);
    s.rx_bytes = s.rx_bytes.value_or(0) + rx;
    s.tx_bytes = s.tx_bytes.value_or(0) + tx;
    if (s.vcpus == 0) s.vcpus = 1;
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
  std::atomic<bool> fail_stats{false};

 private:
  absl::Mutex mu_;
  std::map<std::string, vm::VmTag> domains_;
  std::map<std::string, std::pair<unsigned, unsigned>> sizes_;
  std::map<std::string, vm::DomainStats> stats_;
};

}  // namespace ppe::testing
