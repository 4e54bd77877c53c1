#pragma once

#include <atomic>
#include <vector>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::plugin {

// Counts the A/ANY answers the plugin gives from its table, per (CPT,
// service), and sends them to Resolver.ReportAnswers every `interval`, so the
// PPE's demand tracker counts them as if the queries had reached it. The hot
// path increments a counter in one of 16 shards; a failed report is kept and
// sent with the next.
class DemandReporter {
 public:
  struct Options {
    std::string target;
    absl::Duration interval = absl::Seconds(1);
    absl::Duration deadline = absl::Seconds(2);
    absl::Duration probe_window = absl::Seconds(2);
    size_t max_recent_forwards = 65536;  // untagged forwards remembered, at most
  };
  explicit DemandReporter(Options options);
  ~DemandReporter();  // Stop(): one last report

  void Count(absl::string_view cpt, absl::string_view service);

  // QNAME-minimisation probes. A resolver that minimises asks the untagged
  // parent name (forwarded to Resolve, where it counts as a cohort's demand)
  // right before the tagged name (answered here). The PPE discounts the
  // untagged query only if it hears of the tagged one within its probe window,
  // so the plugin remembers its recent untagged forwards per client key and
  // reports the client when a tagged local answer follows within `probe_window`.
  void NoteUntaggedForward(absl::string_view client, absl::Time now);
  void NoteTaggedAnswer(absl::string_view client, absl::Time now);
  // False while no untagged forward is remembered: the hot path then skips
  // building a client key for NoteTaggedAnswer.
  bool ExpectingProbes() const { return recent_count_.load(std::memory_order_relaxed) != 0; }
  void Start();
  void Stop();
  // Sends what was counted; false (and the counts kept) when the call fails.
  bool Flush();

 private:
  using Counts = absl::flat_hash_map<std::string, int64_t>;  // "cpt|service"
  static constexpr size_t kShards = 16;
  struct Shard {
    absl::Mutex mu;
    Counts counts ABSL_GUARDED_BY(mu);
  };

  Options options_;
  std::unique_ptr<ppe::v1::Resolver::Stub> stub_;
  std::array<Shard, kShards> shards_;
  absl::Mutex probe_mu_;
  // client key -> time of its last forwarded untagged query
  absl::flat_hash_map<std::string, absl::Time> recent_forwards_ ABSL_GUARDED_BY(probe_mu_);
  std::vector<std::string> probe_clients_ ABSL_GUARDED_BY(probe_mu_);
  std::atomic<size_t> recent_count_{0};  // lets a tagged answer skip the lock when empty
  absl::Mutex flush_mu_;                 // one Flush at a time
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ppe::plugin
