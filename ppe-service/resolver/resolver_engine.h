#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/common/latency_histogram.h"
#include "ppe-service/common/timer_queue.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/dns/name_parser.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/cohort_demand.h"
#include "ppe-service/resolver/rate_limiter.h"
#include "ppe-service/scaler/demand_tracker.h"
#include "ppe-service/vm/vm_manager.h"
#include "ppe/config/v1/config.pb.h"
#include "ppe/v1/admin.pb.h"
#include "ppe/v1/resolver.pb.h"

namespace ppe::resolver {

// The answer semantics of docs/design.md ("Answer semantics"), independent of gRPC. Resolve answers
// from memory when it can (inline) and otherwise waits for an allocation up to
// answers.allocation_wait_ms, then falls back; `done` runs exactly once.
class ResolverEngine {
 public:
  using Done = std::function<void(ppe::v1::ResolveResponse)>;

  // What the engine answers and how: its zones (defaults filled, as
  // config::FillDefaults leaves them), TTLs, the allocation wait, the
  // time-of-day buckets of derived attributes, the registration rate limit
  // and when untagged demand makes a cohort a profile.
  struct Options {
    std::vector<ppe::config::v1::Zone> zones{};
    uint32_t ttl = 30;
    uint32_t fallback_ttl = 5;
    absl::Duration allocation_wait = absl::Milliseconds(150);
    uint32_t time_buckets_per_day = 4;
    double registrations_per_minute = 60;
    double registrations_burst = 20;
    CohortDemand::Options cohorts{};
  };
  // zones, answers, cpt.time_buckets_per_day, limits.registrations_*,
  // cohorts (bucket_ms defaulting to scaler.bucket_ms).
  static Options OptionsFromConfig(const ppe::config::v1::PpeConfig& config);

  ResolverEngine(Options options, const cpt::CptCodec& codec, const cpt::RegionTable& regions,
                 registry::Registry& registry, vm::VmManager& vms, TimerQueue& timers,
                 const Clock& clock, scaler::DemandTracker* demand = nullptr);

  // Counters for metrics (relaxed atomics, read by the exporter).
  struct Stats {
    std::atomic<uint64_t> lookups{0}, from_pool{0}, allocated{0}, fallbacks{0}, forged{0},
        rate_limited{0};
    // Untagged answers from the service's shared pool (spares or fallback
    // addresses), and cohorts registered because their demand was sustained.
    std::atomic<uint64_t> shared{0}, cohorts_registered{0};
    LatencyHistogram latency;  // Resolve, from the request to the answer
  };
  const Stats& stats() const { return stats_; }
  const CohortDemand& cohort_demand() const { return cohorts_; }

  void Resolve(const ppe::v1::ResolveRequest& request, Done done);

  // The plugin answered a tagged name from its table right after forwarding an
  // untagged query from the same client key (service, resolver, ECS subnet):
  // that query was a QNAME-minimisation probe and is not counted as demand.
  void NoteProbe(const std::string& client);
  ppe::v1::ListZonesResponse Zones() const { return zones_response_; }

  // Told when an untagged query is answered from an active profile: the data
  // plane (AnswerStream) learns the cohort. Set once, before serving.
  using CohortObserver =
      std::function<void(const std::string& service, const std::string& client, uint32_t bucket,
                         const std::string& cpt, uint32_t scope)>;
  void set_cohort_observer(CohortObserver observer) { cohort_observer_ = std::move(observer); }
  // Scope of an untagged answer whose region no CIDR rule gave (MaxMind or
  // "unknown"): a resolver caches it per client /24 or /56.
  static constexpr int kDefaultScopeV4 = 24;
  static constexpr int kDefaultScopeV6 = 56;

  // The attributes the PPE derives for an untagged query, and the ECS scope
  // (prefix length) they depend on: 0 for ECS source /0 (the resolver's own
  // address is used), else the region's CIDR (see RegionTable::LookupWithScope)
  // capped at the source prefix length.
  struct Derived {
    cpt::Attributes attributes;
    uint32_t scope = 0;
    uint32_t bucket = 0;  // index of attributes.time_bucket
  };
  Derived DeriveAttributes(const ppe::v1::ResolveRequest& request,
                           const std::string& service) const;

 private:
  struct Zone {
    dns::NameParser parser;
    const ppe::config::v1::Zone* config;
  };
  struct Query;  // one Resolve in flight

  void AnswerProfile(std::shared_ptr<Query> q, const std::string& cpt,
                     std::optional<vm::VmManager::Registration> registration);
  void AddAddressRecords(Query& q, const std::vector<std::string>& addresses, uint32_t ttl) const;
  void AnswerFallback(Query& q);
  // An untagged query of a cohort with no ready VM: the service's ready warm
  // spares, else its fallback addresses, with the cohort's scope.
  void AnswerShared(Query& q);
  std::vector<std::string> SharedPool(const std::string& service);
  void Register(CohortDemand::Due due);

  const Options options_;  // zones_ and queries point into options_.zones
  const cpt::CptCodec& codec_;
  const cpt::RegionTable& regions_;
  registry::Registry& registry_;
  vm::VmManager& vms_;
  TimerQueue& timers_;
  const Clock& clock_;
  RateLimiter registrations_;
  scaler::DemandTracker* demand_;
  Stats stats_;
  CohortDemand cohorts_;
  struct Shared {
    std::vector<std::string> addresses;
    absl::Time refreshed = absl::InfinitePast();
  };
  absl::Mutex shared_mu_;
  absl::flat_hash_map<std::string, Shared> shared_ ABSL_GUARDED_BY(shared_mu_);  // by service
  std::vector<Zone> zones_;
  ppe::v1::ListZonesResponse zones_response_;
  CohortObserver cohort_observer_;
};

}  // namespace ppe::resolver
