#include "ppe-service/vm/exhaustion_log.h"

#include "ppe-service/common/log.h"

namespace ppe::vm {

const char* LimitName(Limit limit) {
  switch (limit) {
    case Limit::kAddressPool:
      return "address_pool";
    case Limit::kService:
      return "service";
    case Limit::kGlobal:
      return "global";
    case Limit::kHostCapacity:
      return "host_capacity";
  }
  return "unknown";
}

void ExhaustionLog::Hit(Limit limit, const std::string& service, const std::string& detail,
                        absl::Time now) {
  int64_t suppressed = 0;
  {
    absl::MutexLock lock(&mu_);
    State& s = states_[{static_cast<int>(limit), service}];
    ++s.refusals;
    s.exhausted = true;
    s.last = now;
    ++s.since_log;
    if (now - s.logged < log_every_) return;
    s.logged = now;
    suppressed = s.since_log - 1;
    s.since_log = 0;
  }
  spdlog::warn(
      "VM refused: service {} is at its {} limit ({}); its new profiles get the fallback "
      "addresses ({} more refusals since the last such line)",
      service, LimitName(limit), detail, suppressed);
}

void ExhaustionLog::Created(const std::string& service) {
  absl::MutexLock lock(&mu_);
  for (auto& [key, s] : states_) {
    if (key.second == service) s.exhausted = false;
  }
}

std::vector<ExhaustionLog::Entry> ExhaustionLog::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<Entry> out;
  for (const auto& [key, s] : states_) {
    out.push_back(Entry{.limit = static_cast<Limit>(key.first),
                        .service = key.second,
                        .refusals = s.refusals,
                        .exhausted = s.exhausted,
                        .last = s.last});
  }
  return out;
}

}  // namespace ppe::vm
