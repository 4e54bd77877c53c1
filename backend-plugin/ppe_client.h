#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::plugin {

// The plugin's side of the gRPC link: every call has a deadline far below
// pdns's backend timeout, and a circuit breaker stops waiting on a PPE that
// keeps failing, so a dead or slow PPE costs a fallback answer, not a timeout.
class PpeClient {
 public:
  struct Options {
    std::string target;  // "127.0.0.1:50051", "ipv4:a:p,b:p", "dns:///ppe:50051"
    absl::Duration deadline = absl::Milliseconds(300);
    int breaker_failures = 5;
    absl::Duration breaker_open = absl::Seconds(1);
  };

  explicit PpeClient(Options options);

  // UNAVAILABLE without a call while the breaker is open.
  absl::StatusOr<ppe::v1::ResolveResponse> Resolve(const ppe::v1::ResolveRequest& request);
  absl::StatusOr<ppe::v1::ListZonesResponse> ListZones(absl::Duration deadline);

  bool breaker_open() const;

 private:
  void RecordResult(bool ok);

  Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ppe::v1::Resolver::Stub> stub_;
  std::atomic<int> consecutive_failures_{0};
  std::atomic<int64_t> open_until_ns_{0};
};

}  // namespace ppe::plugin
