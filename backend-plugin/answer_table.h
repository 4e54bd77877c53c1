#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe/v1/resolver.pb.h"

namespace ppe::plugin {

// The answers the plugin gives without asking the PPE, as WatchAnswers streams
// them (protocol in resolver.proto): (service, CPT) -> ready IPv4 addresses,
// and (service, client, time bucket) -> the cohort's CPT and ECS scope.
//
// Reads come from every pdns connection thread at once. Entries live in 64
// shards, each behind its own reader/writer lock, updated in place by deltas
// (one writer: the stream thread); a snapshot builds a new table that replaces
// the old one at once. A reader finds the current table through a per-thread
// cached pointer revalidated by one relaxed atomic load, so lookups share no
// written cache line except their shard's lock word.
class AnswerTable {
 public:
  struct Options {
    // How long the table keeps being served after the stream is lost.
    absl::Duration stale_serve = absl::Seconds(300);
  };
  enum class Mode { kFresh, kStale, kOff };

  struct Answer {
    absl::InlinedVector<uint32_t, 4> v4;  // network byte order
    uint32_t ttl = 0;
    uint32_t scope = 0;
    std::string cpt;  // the profile that answered (for demand counts)
  };

  explicit AnswerTable(Options options);
  AnswerTable() : AnswerTable(Options{}) {}
  ~AnswerTable();

  // kFresh while the stream is up, kStale within stale_serve of losing it,
  // kOff before the first snapshot and after stale_serve.
  Mode mode(absl::Time now) const;

  // A tagged name: the profile's ready addresses; scope 0.
  bool FindProfile(absl::string_view service, absl::string_view cpt, Answer& out) const;
  // An untagged query from `client` (dns::CohortClient) at `now`: the cohort's
  // profile's addresses with the cohort's scope.
  bool FindCohort(absl::string_view service, absl::string_view client, absl::Time now,
                  Answer& out) const;

  // Applies one streamed update. FAILED_PRECONDITION when it does not follow
  // the version held (the caller reconnects; the next request asks for a snapshot).
  absl::Status Apply(const ppe::v1::AnswerUpdate& update);
  // The stream is up (a message arrived) or lost (a snapshot being received is dropped).
  void SetConnected(bool connected, absl::Time now);
  // Forgets the version so the next watch asks for a snapshot; entries stay served.
  void ForgetVersion();

  uint64_t epoch() const;
  uint64_t version() const;
  size_t profile_count() const;
  size_t cohort_count() const;

 private:
  static constexpr size_t kShards = 64;
  struct ProfileValue {
    absl::InlinedVector<uint32_t, 2> v4;
    uint32_t ttl = 0;
  };
  struct CohortValue {
    std::string cpt;
    uint32_t scope = 0;
  };
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, ProfileValue> profiles ABSL_GUARDED_BY(mu);
    absl::flat_hash_map<std::string, CohortValue> cohorts ABSL_GUARDED_BY(mu);
  };
  struct Table {
    std::array<Shard, kShards> shards;
    uint32_t buckets_per_day = 24;
  };

  const Table* Current() const;
  static Shard& ShardOf(Table& t, absl::string_view key);
  static void Upsert(Table& t, const ppe::v1::ProfileAnswer& p);
  static void Upsert(Table& t, const ppe::v1::CohortAnswer& c);
  static void Remove(Table& t, const ppe::v1::ProfileAnswer& p);
  static void Remove(Table& t, const ppe::v1::CohortAnswer& c);

  Options options_;
  const uint64_t id_;  // tells this table's per-thread cache entries apart
  std::atomic<uint64_t> generation_{1};
  mutable absl::Mutex swap_mu_;
  std::shared_ptr<Table> current_ ABSL_GUARDED_BY(swap_mu_);
  std::unique_ptr<Table> pending_;  // a snapshot being received (stream thread only)
  std::atomic<uint64_t> epoch_{0}, version_{0};
  std::atomic<bool> has_snapshot_{false}, connected_{false};
  std::atomic<int64_t> lost_at_ns_{0};
};

}  // namespace ppe::plugin
