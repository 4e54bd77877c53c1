#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ppe::vm {

// Which limit stopped a VM from being created.
enum class Limit { kAddressPool, kService, kGlobal, kHostCapacity };
const char* LimitName(Limit limit);  // "address_pool", "service", ...

// Makes exhaustion visible: each refusal is counted per (limit, service), a
// limit is "exhausted" from its first refusal until a VM of that service is
// created again, and a warning naming the service and the limit is logged at
// most once per `log_every` per (limit, service).
class ExhaustionLog {
 public:
  explicit ExhaustionLog(absl::Duration log_every = absl::Seconds(60)) : log_every_(log_every) {}

  void Hit(Limit limit, const std::string& service, const std::string& detail, absl::Time now);
  void Created(const std::string& service);  // a VM of the service was created

  struct Entry {
    Limit limit;
    std::string service;
    int64_t refusals = 0;
    bool exhausted = false;
    absl::Time last = absl::InfinitePast();
  };
  std::vector<Entry> Snapshot() const;

 private:
  struct State {
    int64_t refusals = 0;
    bool exhausted = false;
    absl::Time last = absl::InfinitePast();
    absl::Time logged = absl::InfinitePast();
    int64_t since_log = 0;
  };
  const absl::Duration log_every_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::pair<int, std::string>, State> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::vm
