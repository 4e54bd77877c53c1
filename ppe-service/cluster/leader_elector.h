#pragma once

// Leader election through etcd's own election service (v3election: Campaign,
// Leader, Resign), on a lease kept alive by a LeaseKeeper, and fencing for the
// leader's writes.
//
// Campaign puts `<name>/<lease id>` bound to the lease and returns once that
// key is the oldest under <name>: the leader key. The leader stays leader while
// the lease lives; when the process dies or stops sending keepalives, etcd
// deletes the key after the lease TTL and the next candidate's Campaign
// returns. A leader that was stalled (GC pause, SIGSTOP, partition) may still
// believe it leads: every write it makes as leader must go through Fence(),
// which adds a compare of the leader key's create revision, so etcd refuses
// the write once the key is gone or belongs to someone else.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/cluster/lease_keeper.h"
#include "ppe-service/store/registry_store.h"

namespace grpc {
class Channel;
}

namespace ppe::cluster {

class LeaderElector {
 public:
  struct Options {
    // etcd members, IPv4 host:port, reached in plain text unless `channel`
    // is given.
    std::vector<std::string> endpoints;
    // The key prefix of the election in etcd's keyspace ("/ppe/leader/scaler").
    std::string name;
    // What Leader() reports for this candidate (a replica id).
    std::string value;
    // Lease TTL: how long a dead leader keeps the role.
    absl::Duration ttl = absl::Seconds(5);
    absl::Duration timeout = absl::Seconds(5);  // deadline of each unary call
    // The EtcdRegistryStore's prefix, so that Fence() names the leader key as
    // that store sees it (store key = etcd key without the prefix).
    std::string store_prefix;
    // When set, used instead of a plain-text channel to `endpoints` (e.g. the
    // EtcdRegistryStore's, which carries its TLS options).
    std::shared_ptr<grpc::Channel> channel;
  };

  struct LeaderKey {
    std::string key;          // etcd key: name/<lease id hex>
    int64_t create_revision;  // etcd revision
    int64_t lease;
  };

  static absl::StatusOr<std::unique_ptr<LeaderElector>> Connect(Options options);
  ~LeaderElector();  // stops keepalives; does not resign (the lease runs out)

  // Grants a lease, keeps it alive, and waits until this candidate leads or
  // `wait` passes (DEADLINE_EXCEEDED).
  absl::StatusOr<LeaderKey> Campaign(absl::Duration wait);
  // Gives the role up now (deletes the leader key) and revokes the lease.
  absl::Status Resign();
  // The current leader's value, NOT_FOUND when none.
  absl::StatusOr<std::string> Leader();

  // Adds "the leader key is still mine" to `txn`: its success branch runs only
  // while this candidate leads. FAILED_PRECONDITION when it never won.
  absl::StatusOr<store::Txn> Fence(store::Txn txn) const;

  // Stops sending lease keepalives, as a stalled process would (tests).
  void StopKeepAlive();

 private:
  struct Stubs;
  LeaderElector(Options options, std::shared_ptr<Stubs> stubs);

  const Options options_;
  const std::shared_ptr<Stubs> stubs_;
  mutable absl::Mutex mu_;
  std::optional<LeaderKey> leader_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<LeaseKeeper> lease_ ABSL_GUARDED_BY(mu_);  // of the latest Campaign
};

}  // namespace ppe::cluster
