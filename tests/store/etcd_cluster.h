#pragma once

// A real etcd cluster for tests: 1..n `etcd` members (Debian's etcd-server)
// on free loopback ports, their data in a temporary directory, stopped by PID.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ppe::store::testing {

class EtcdCluster {
 public:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = -1;  // -1 once stopped
  };

  // Starts `members` members under `dir` and waits until they elected a leader.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(
      int members, const std::string& dir, absl::Duration timeout = absl::Seconds(20));
  ~EtcdCluster();  // SIGTERM to every running member, SIGKILL after 0.5 s

  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  // "127.0.0.1:port" of every member (also of stopped ones).
  std::vector<std::string> Endpoints() const;
  std::string Endpoint(int member) const;
  // Process id of a running member (-1 once stopped).
  pid_t pid(int member) const { return members_[member].pid; }
  int size() const { return static_cast<int>(members_.size()); }

  // SIGKILL, then reap.
  void Kill(int member);
  // Index of the member that is the raft leader, as the live members see it.
  absl::StatusOr<int> Leader(absl::Duration timeout = absl::Seconds(10));

 private:
  EtcdCluster(std::string dir, std::vector<Member> members)
      : dir_(std::move(dir)), members_(std::move(members)) {}
  absl::Status Launch(int member, const std::string& initial_cluster);

  std::string dir_;
  std::vector<Member> members_;
};

}  // namespace ppe::store::testing
