#include "ppe-service/lifecycle/janitor.h"

#include "ppe-service/common/log.h"
#include "ppe-service/cpt/cpt_codec.h"

namespace ppe::lifecycle {

Janitor::Report Janitor::Tick() {
  Report r;
  absl::Time now = clock_.Now();
  if (absl::StatusOr<int> flushed = registry_.FlushLastSeen(); flushed.ok()) {
    r.flushed = *flushed;
  } else {
    ++r.errors;
    spdlog::warn("janitor: flushing last_seen: {}", flushed.status().message());
  }
  for (const registry::ProfileRecord& p : registry_.ListProfiles()) {
    if (!p.invalidated && now - p.last_seen > options_.idle_expiry) {
      if (registry_.InvalidateProfile(p.cpt, now, now + options_.drain).ok()) {
        ++r.expired;
        spdlog::info("profile {} expired (idle since {})", cpt::CptCodec::Fingerprint(p.cpt),
                     absl::FormatTime(p.last_seen));
      } else {
        ++r.errors;
      }
    }
  }
  for (const registry::VmRecord& vm : registry_.ListVms()) {
    if (vm.state == registry::VmState::kDraining && vm.release_after <= now) {
      if (vms_.ReleaseVm(vm.name).ok())
        ++r.released;
      else
        ++r.errors;
    }
  }
  for (const registry::ProfileRecord& p : registry_.ListProfiles()) {
    if (p.invalidated && p.pools.empty()) {
      if (registry_.RemoveProfile(p.cpt).ok())
        ++r.removed;
      else
        ++r.errors;
    }
  }
  return r;
}

void Janitor::Start() {
  loop_.Start(options_.interval, [this] { Tick(); });
}

}  // namespace ppe::lifecycle
