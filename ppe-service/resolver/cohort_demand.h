#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/cpt/attributes.h"

namespace ppe::resolver {

// Untagged demand per (cohort, service) for cohorts that are not registered
// yet, in memory only. A cohort becomes due for registration once it had
// `min_requests` counted queries in each of `buckets` consecutive buckets.
//
// A query is counted only once `probe_window` has passed without a tagged
// query for the same service from the same resolver and ECS subnet (the
// `client` key): a resolver that minimises QNAMEs asks the untagged parent
// name, with the client's ECS, right before the tagged name, and such probes
// are not demand. Memory is bounded by `max_tracked` (cohorts and pending
// queries; past it, new ones are not tracked).
class CohortDemand {
 public:
  struct Options {
    int64_t min_requests = 5;
    int buckets = 2;
    absl::Duration bucket = absl::Seconds(60);
    absl::Duration probe_window = absl::Seconds(2);
    size_t max_tracked = 100000;
  };
  // A cohort whose demand is sustained: register it.
  struct Due {
    std::string cpt;
    std::string service;
    cpt::Attributes attributes;
    std::string source;  // the last counted query's source prefix (rate limiting)
  };
  struct Stats {
    int64_t counted = 0, probes = 0, dropped = 0, due = 0;
  };

  explicit CohortDemand(Options options) : options_(options) {}

  // An untagged query of the (unregistered) cohort `cpt`; returns the cohorts
  // that became due (for this or earlier queries whose window has passed).
  std::vector<Due> RecordUntagged(const std::string& client, const std::string& source,
                                  const std::string& cpt, const std::string& service,
                                  const cpt::Attributes& attributes, absl::Time now);
  // A tagged query: the untagged query just before it from `client` was a probe.
  void RecordTagged(const std::string& client, absl::Time now);
  // Forgets a cohort (once registered).
  void Forget(const std::string& cpt, const std::string& service);

  Stats stats() const;
  size_t tracked() const;

  // The client key: service, resolver address and ECS subnet.
  static std::string ClientKey(const std::string& service, const std::string& remote,
                               const std::string& real_remote);

 private:
  struct Pending {
    std::string client, source, cpt, service;
    cpt::Attributes attributes;
    absl::Time at;
    uint64_t seq;
    bool probe = false;
  };
  struct Cohort {
    int64_t bucket = -1;          // index of the newest bucket counted
    std::vector<int64_t> counts;  // the last `buckets` buckets, newest last
  };
  void Settle(absl::Time now, std::vector<Due>& due) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t BucketOf(absl::Time t) const;

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);  // in arrival order
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  // client key -> seq of its newest pending query
  absl::flat_hash_map<std::string, uint64_t> last_pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Cohort> cohorts_ ABSL_GUARDED_BY(mu_);  // "<cpt>/<service>"
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::resolver
