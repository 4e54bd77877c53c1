#include "backend-plugin/ppe_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"

namespace ppe::plugin {
namespace {

// Round robin over every resolved PPE address; a call that fails with
// UNAVAILABLE (a replica went away) is retried on another within the deadline.
constexpr const char* kServiceConfig = R"({
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "ppe.v1.Resolver"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.01s",
      "maxBackoff": "0.05s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})";

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::chrono::system_clock::time_point Deadline(absl::Duration d) {
  return std::chrono::system_clock::now() + absl::ToChronoMilliseconds(d);
}

}  // namespace

PpeClient::PpeClient(Options options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(kServiceConfig);
  // Find a restarted PPE quickly instead of backing off for up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(), args);
  stub_ = ppe::v1::Resolver::NewStub(channel_);
}

bool PpeClient::breaker_open() const {
  return absl::GetCurrentTimeNanos() < open_until_ns_.load(std::memory_order_relaxed);
}

void PpeClient::RecordResult(bool ok) {
  if (ok) {
    consecutive_failures_.store(0, std::memory_order_relaxed);
    return;
  }
  if (consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1 >=
      options_.breaker_failures) {
    // The count is not reset: after the open period one more failure reopens it.
    open_until_ns_.store(
        absl::GetCurrentTimeNanos() + absl::ToInt64Nanoseconds(options_.breaker_open),
        std::memory_order_relaxed);
    spdlog::warn("PPE at {} keeps failing: answering fallbacks for {} ms without asking it",
                 options_.target, absl::ToInt64Milliseconds(options_.breaker_open));
  }
}

absl::StatusOr<ppe::v1::ResolveResponse> PpeClient::Resolve(
    const ppe::v1::ResolveRequest& request) {
  if (breaker_open()) return absl::UnavailableError("circuit breaker open");
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(options_.deadline));
  ppe::v1::ResolveResponse response;
  grpc::Status s = stub_->Resolve(&ctx, request, &response);
  RecordResult(s.ok());
  if (!s.ok()) return FromGrpc(s);
  return response;
}

absl::StatusOr<ppe::v1::ListZonesResponse> PpeClient::ListZones(absl::Duration deadline) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(deadline));
  ctx.set_wait_for_ready(true);  // at start-up, give a starting PPE the whole deadline
  ppe::v1::ListZonesResponse response;
  grpc::Status s = stub_->ListZones(&ctx, {}, &response);
  if (!s.ok()) return FromGrpc(s);
  return response;
}

}  // namespace ppe::plugin
