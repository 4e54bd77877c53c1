#pragma once

// Replicas count demand where lookups and the plugins' reports arrive, but
// only the leader's scaler reads it: a follower forwards its counts to the
// leader. Every `interval` a replica that does not lead drains its
// DemandTracker and sends the counts to the leader's Resolver.ReportAnswers
// (the plugins' own report), so the leader records them exactly as if a
// plugin had reported to it. Runs on its own thread, never on the lookup path.
//
// Exactly once per leader: every request is a batch named (sender, seq), the
// sender unique to this forwarder's process. A batch whose reply did not come
// (deadline, leader slow or gone) is in doubt: the leader may have counted
// it. It is kept as it is and resent with the same seq, before anything
// newer, until a leader acknowledges it; the leader (ForwardedBatches) counts
// a seq at or below the last it applied for that sender as a duplicate. A
// new leader has no memory of seqs: it counts the batch in doubt, so across a
// leader change a batch is counted at least once, twice only when the old
// leader applied it, checkpointed that bucket and then lost the reply.
// Counts never sent (no leader known, or behind a batch in doubt) go back
// into the tracker, where later counts add to them, at most `max_held`
// (CPT, service) entries; the rest are dropped, counted and logged.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
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
    // Names this forwarder's batches (e.g. the replica id): the sender is
    // "<sender>/<random 64-bit hex>", the random part chosen at construction
    // so that a restarted follower, whose seqs start again at 1, is new to
    // the leader.
    std::string sender{};
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
    int64_t sent = 0;        // requests delivered to the leader (acknowledged)
    int64_t failures = 0;    // rounds whose send failed
    int64_t put_back = 0;    // requests put back for a later round
    int64_t dropped = 0;     // requests dropped over `max_held`
    int64_t resent = 0;      // requests resent in a batch in doubt
    int64_t duplicates = 0;  // batches the leader had applied already
    // (CPT, service) series waiting for a leader after the last round: put
    // back into the tracker, plus those of the batch in doubt (0 once sent).
    int64_t held = 0;
  };
  // As of the end of the last round; never waits for a round in progress
  // (which may wait on etcd or the leader): the metrics read it.
  Stats stats() const;
  const std::string& sender() const { return sender_; }

 private:
  // A batch sent whose reply never came.
  struct Batch {
    uint64_t seq = 0;
    ppe::v1::ReportAnswersRequest request;
    int64_t requests = 0;
  };
  // ForwardOnce's round, under mu_.
  absl::Status Round() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `batch` to the leader at target_; OK once acknowledged.
  absl::Status Send(const Batch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutBack(const std::vector<scaler::DemandTracker::Count>& counts, size_t from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // This replica leads now: its own tracker takes the batch in doubt.
  void KeepInDoubt() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  scaler::DemandTracker& demand_;
  const Leader leader_;
  const Options options_;
  mutable absl::Mutex mu_;  // one round at a time
  std::string target_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ppe::v1::Resolver::Stub> stub_ ABSL_GUARDED_BY(mu_);  // to target_
  Stats stats_ ABSL_GUARDED_BY(mu_);
  // stats_ as of the end of the last round, for stats().
  mutable absl::Mutex published_mu_ ABSL_ACQUIRED_AFTER(mu_);
  Stats published_ ABSL_GUARDED_BY(published_mu_);
  const std::string sender_;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::optional<Batch> in_doubt_ ABSL_GUARDED_BY(mu_);
  bool started_ = false;  // Start and Stop: the owner's thread only
  PeriodicThread loop_;
};

// The leader's side of the forwarding: the last batch seq it applied per
// sender, so that a batch resent after a lost reply is acknowledged without
// being counted again. In memory only (a new leader starts empty); remembers
// the `max_senders` senders seen last. Thread-safe; requests without a sender
// (the plugins') are always applied.
class ForwardedBatches {
 public:
  explicit ForwardedBatches(size_t max_senders = 65536) : max_senders_(max_senders) {}
  // Runs `apply` (under this object's lock, so a batch and its resend never
  // both apply) unless `seq` is at or below the last applied for `sender`;
  // true when it ran.
  bool ApplyOnce(const std::string& sender, uint64_t seq, const std::function<void()>& apply)
      ABSL_LOCKS_EXCLUDED(mu_);
  size_t senders() const ABSL_LOCKS_EXCLUDED(mu_);
  // Batches acknowledged without being applied again (ApplyOnce false).
  int64_t duplicates() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Last {
    uint64_t seq = 0;
    uint64_t used = 0;  // ticket of the last batch: the oldest is forgotten first
  };
  const size_t max_senders_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Last> last_ ABSL_GUARDED_BY(mu_);
  uint64_t ticket_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t duplicates_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ppe::cluster
