#pragma once

// One etcd lease, kept alive on a thread of its own: the one keep-alive loop
// behind both the replica's session (membership, allocation locks) and the
// leader election's lease.
//
// Grant() asks etcd for a lease of `ttl` and sends keepalives every ttl/3 on
// a LeaseKeepAlive stream. A stream that breaks (its etcd member is gone) is
// opened again after 100 ms, through the channel's other members. When etcd
// answers that the lease is gone (ttl 0: this process stalled for longer than
// the TTL), the keeper either grants a new lease (`regrant`: a session, whose
// keys come back with their next write) or reports the loss (lost()) and
// stops (an election lease: the role is gone with it).

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace ppe::cluster {

class LeaseKeeper {
 public:
  struct Options {
    absl::Duration ttl = absl::Seconds(2);
    absl::Duration timeout = absl::Seconds(5);  // deadline of grant and revoke
    // When etcd says the lease is gone: grant a new one (true) or stop (false).
    bool regrant = false;
    std::string what = "lease";  // in log lines ("session lease")
  };

  // Grants the lease and starts keeping it alive.
  static absl::StatusOr<std::unique_ptr<LeaseKeeper>> Grant(std::shared_ptr<grpc::Channel> channel,
                                                            Options options);
  ~LeaseKeeper();  // Stop(); the lease then runs out in its TTL (no revoke)

  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // The lease now (a regrant changes it).
  int64_t id() const ABSL_LOCKS_EXCLUDED(mu_);
  // etcd answered that the lease is gone and no new one was granted.
  bool lost() const ABSL_LOCKS_EXCLUDED(mu_);
  // Stops sending keepalives, as a stalled process would; the lease expires
  // after its TTL. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Stop(), then revokes the lease: keys bound to it go at once.
  void Revoke() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Stub;
  LeaseKeeper(std::unique_ptr<Stub> stub, Options options, int64_t lease);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  // Grants a new lease; its id, or 0 when etcd did not answer.
  int64_t GrantOne();

  const std::unique_ptr<Stub> stub_;
  const Options options_;
  mutable absl::Mutex mu_;
  int64_t lease_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // to cancel on Stop
  std::thread thread_;
};

}  // namespace ppe::cluster
