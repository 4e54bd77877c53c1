#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/clock.h"
#include "ppe-service/registry/registry.h"
#include "ppe/config/v1/config.pb.h"
#include "ppe/v1/resolver.pb.h"

namespace ppe::resolver {

// The versioned answer state that Resolver.WatchAnswers streams to plugins
// (protocol in resolver.proto). Registry change events and the cohorts the
// engine answers become deltas; each delta is built once and shared, read-only,
// by every watcher (a watcher holds only a cursor), and the last
// `log_capacity` deltas are kept so a reconnecting plugin gets only what it
// missed. Transport-independent: the gRPC reactor lives in server/.
class AnswerStream {
 public:
  struct Options {
    size_t log_capacity = 20000;     // deltas kept for resuming plugins
    size_t snapshot_chunk = 2000;    // entries per snapshot message
    size_t max_cohorts = 2'000'000;  // cohort entries held; beyond, no new ones
    uint32_t ttl = 30;               // answers.ttl
    uint32_t time_buckets_per_day = 24;
    uint64_t epoch = 0;  // 0: random
  };
  // answers.ttl and cpt.time_buckets_per_day; the rest keeps its defaults.
  static Options OptionsFromConfig(const ppe::config::v1::PpeConfig& config) {
    return {.ttl = config.answers().ttl(),
            .time_buckets_per_day = config.cpt().time_buckets_per_day()};
  }
  using Update = std::shared_ptr<const ppe::v1::AnswerUpdate>;

  AnswerStream(registry::Registry& registry, std::vector<std::string> services,
               ppe::v1::ListZonesResponse zones, const Clock& clock, Options options);

  // Builds the state from every profile in the registry and subscribes to its
  // changes. Call once, before serving.
  void Start();

  // Registry hook: recomputes the profile's entries and publishes what changed.
  void OnProfileChanged(const std::string& cpt);
  // Engine hook: an untagged query from `client` in `bucket` was answered from
  // the active profile `cpt` with ECS scope `scope`.
  void OnCohortAnswer(const std::string& service, const std::string& client, uint32_t bucket,
                      const std::string& cpt, uint32_t scope);
  // Removes cohort entries whose bucket is not `bucket` (the current one).
  void ExpireCohorts(uint32_t bucket);
  uint32_t CurrentBucket() const;

  // What a client that applied (epoch, version) must be sent next: the deltas
  // after its version (shared, not copied), or a snapshot (built for it) when it
  // is from another epoch or older than the log. Empty when it is up to date,
  // unless `hello`: then one empty update at the current version (a resuming
  // client learns it is connected and current).
  std::vector<Update> Since(uint64_t epoch, uint64_t version, bool hello = false) const;

  // `wake` runs (on the publishing thread) after each new delta until Unsubscribe
  // returns; it must not call Subscribe/Unsubscribe.
  uint64_t Subscribe(std::function<void()> wake);
  void Unsubscribe(uint64_t id);

  // Watchers end their streams (server shutdown): wakes them with closed() true.
  void Close() {
    closed_.store(true);
    Wake();
  }
  bool closed() const { return closed_.load(); }

  uint64_t epoch() const { return options_.epoch; }
  uint64_t version() const;
  size_t profile_entries() const;
  size_t cohort_entries() const;

 private:
  // "service|cpt" and "service|client|bucket"
  static std::string ProfileKey(const std::string& service, const std::string& cpt);
  static std::string CohortKey(const std::string& service, const std::string& client,
                               uint32_t bucket);

  // Appends the delta to the log under mu_; then wakes watchers.
  void Publish(ppe::v1::AnswerUpdate delta) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Wake();
  bool RecomputeLocked(const std::string& cpt, ppe::v1::AnswerUpdate& delta)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  registry::Registry& registry_;
  const std::vector<std::string> services_;
  const ppe::v1::ListZonesResponse zones_;
  const Clock& clock_;
  Options options_;

  mutable absl::Mutex mu_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t cohort_bucket_ ABSL_GUARDED_BY(mu_) = 0;  // every cohort entry is of this bucket
  absl::flat_hash_map<std::string, ppe::v1::ProfileAnswer> profiles_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ppe::v1::CohortAnswer> cohorts_ ABSL_GUARDED_BY(mu_);
  // cpt -> keys of the cohort entries that name it
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> cohorts_of_
      ABSL_GUARDED_BY(mu_);
  std::deque<Update> log_ ABSL_GUARDED_BY(mu_);

  std::atomic<bool> closed_{false};
  absl::Mutex subs_mu_;
  uint64_t next_sub_ ABSL_GUARDED_BY(subs_mu_) = 1;
  absl::flat_hash_map<uint64_t, std::function<void()>> subs_ ABSL_GUARDED_BY(subs_mu_);
};

}  // namespace ppe::resolver
