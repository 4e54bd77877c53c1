#pragma once

// Replicas count demand where lookups and the plugins' reports arrive, but
// only the leader's scaler reads it: a follower forwards its counts to the
// leader. Every `interval` a replica that does not lead drains its
// DemandTracker and sends the counts to the leader's Resolver.ReportAnswers
// (the plugins' own report), so the leader records them exactly as if a
// plugin had reported to it. A send that fails (no leader, leader gone) puts
// the counts back into the tracker for the next round, at most `max_held`
// (CPT, service) entries; the rest are dropped, counted and logged. Runs on
// its own thread, never on the lookup path.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/common/periodic_thread.h"
#include "ppe-service/scaler/demand_tracker.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::cluster {

class Replica;

class DemandForwarder {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
    absl::Duration timeout = absl::Seconds(2);  // deadline of each send
    size_t max_held = 100000;                   // entries put back after a failed send, at most
    size_t batch = 10000;                       // counts per ReportAnswers call
  };
  // Where the leader is: `leads` says whether this replica leads (cheap,
  // asked every round); `address` gives the leader's Resolver address
  // ("host:port", asked only when there is something to send), an error when
  // no leader is known.
  struct Leader {
    std::function<bool()> leads;
    std::function<absl::StatusOr<std::string>()> address;
  };
  // `replica`'s view: its role, and the address the leader's membership key
  // carries. Must not outlive `replica`.
  static Leader LeaderOf(Replica& replica);

  // `demand` must outlive the forwarder.
  DemandForwarder(scaler::DemandTracker& demand, Leader leader, Options options);
  ~DemandForwarder();  // Stop()

  void Start();
  // Stops the thread, then forwards once more (a follower's last counts);
  // counts that could not be sent stay in the tracker.
  void Stop();

  // One round: drains and sends when another replica leads. OK when there was
  // nothing to send or everything was sent; else the error, with the counts
  // put back (up to `max_held`).
  absl::Status ForwardOnce();

  struct Stats {
    int64_t sent = 0;      // requests delivered to the leader
    int64_t failures = 0;  // rounds whose send failed
    int64_t put_back = 0;  // requests put back for a later round
    int64_t dropped = 0;   // requests dropped over `max_held`
  };
  Stats stats() const;

 private:
  void PutBack(const std::vector<scaler::DemandTracker::Count>& counts, size_t from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  scaler::DemandTracker& demand_;
  const Leader leader_;
  const Options options_;
  mutable absl::Mutex mu_;  // one round at a time
  std::string target_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ppe::v1::Resolver::Stub> stub_ ABSL_GUARDED_BY(mu_);  // to target_
  Stats stats_ ABSL_GUARDED_BY(mu_);
  bool started_ = false;  // Start and Stop: the owner's thread only
  PeriodicThread loop_;
};

}  // namespace ppe::cluster
