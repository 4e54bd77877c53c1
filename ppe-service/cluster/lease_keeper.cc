#include "ppe-service/cluster/lease_keeper.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "ppe-service/common/log.h"

namespace ppe::cluster {

namespace pb = etcdserverpb;

struct LeaseKeeper::Stub {
  std::unique_ptr<pb::Lease::Stub> lease;
};

absl::StatusOr<std::unique_ptr<LeaseKeeper>> LeaseKeeper::Grant(
    std::shared_ptr<grpc::Channel> channel, Options options) {
  auto stub = std::make_unique<Stub>();
  stub->lease = pb::Lease::NewStub(channel);
  pb::LeaseGrantRequest grant;
  grant.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(options.ttl)));
  pb::LeaseGrantResponse granted;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
  grpc::Status s = stub->lease->LeaseGrant(&context, grant, &granted);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        "etcd " + options.what + " grant: " + s.error_message());
  }
  std::unique_ptr<LeaseKeeper> keeper(
      new LeaseKeeper(std::move(stub), std::move(options), granted.id()));
  LeaseKeeper* self = keeper.get();
  keeper->thread_ = std::thread([self] { self->Loop(); });
  return keeper;
}

LeaseKeeper::LeaseKeeper(std::unique_ptr<Stub> stub, Options options, int64_t lease)
    : stub_(std::move(stub)), options_(std::move(options)), lease_(lease) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

int64_t LeaseKeeper::id() const {
  absl::MutexLock lock(&mu_);
  return lease_;
}

bool LeaseKeeper::lost() const {
  absl::MutexLock lock(&mu_);
  return lost_;
}

void LeaseKeeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (stream_ != nullptr) stream_->TryCancel();
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void LeaseKeeper::Revoke() {
  Stop();
  pb::LeaseRevokeRequest revoke;
  revoke.set_id(id());
  pb::LeaseRevokeResponse revoked;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  stub_->lease->LeaseRevoke(&context, revoke, &revoked).ok();
}

int64_t LeaseKeeper::GrantOne() {
  pb::LeaseGrantRequest grant;
  grant.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(options_.ttl)));
  pb::LeaseGrantResponse granted;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  if (!stub_->lease->LeaseGrant(&context, grant, &granted).ok()) return 0;
  return granted.id();
}

void LeaseKeeper::Loop() {
  const absl::Duration every = std::max(options_.ttl / 3, absl::Milliseconds(100));
  while (true) {
    grpc::ClientContext context;
    int64_t lease;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      lease = lease_;
      stream_ = &context;
    }
    auto stream = stub_->lease->LeaseKeepAlive(&context);
    pb::LeaseKeepAliveRequest request;
    request.set_id(lease);
    pb::LeaseKeepAliveResponse response;
    bool answered = false;
    while (stream->Write(request) && stream->Read(&response)) {
      answered = true;
      if (response.ttl() <= 0) break;
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), every)) break;
    }
    context.TryCancel();
    stream->Finish().IgnoreError();
    {
      absl::MutexLock lock(&mu_);
      stream_ = nullptr;
      if (stop_) return;
    }
    absl::Duration pause = absl::Milliseconds(100);  // member gone: retry on another
    if (answered && response.ttl() <= 0) {
      // The lease ran out (a stall longer than the TTL).
      if (!options_.regrant) {
        spdlog::warn("etcd {} {:x} expired", options_.what, lease);
        absl::MutexLock lock(&mu_);
        lost_ = true;
        return;
      }
      spdlog::warn("etcd {} {:x} expired; granting a new one", options_.what, lease);
      if (int64_t renewed = GrantOne(); renewed != 0) {
        absl::MutexLock lock(&mu_);
        lease_ = renewed;
        pause = absl::ZeroDuration();
      } else {
        pause = absl::Milliseconds(200);
      }
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_), pause)) return;
  }
}

}  // namespace ppe::cluster
