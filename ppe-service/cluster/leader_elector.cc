#include "ppe-service/cluster/leader_elector.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace ppe::cluster {
namespace {

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      "etcd " + what + ": " + status.error_message());
}

}  // namespace

struct LeaderElector::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v3electionpb::Election::Stub> election;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  absl::Mutex mu;
  grpc::ClientContext* keepalive_context ABSL_GUARDED_BY(mu) = nullptr;
};

absl::StatusOr<std::unique_ptr<LeaderElector>> LeaderElector::Connect(Options options) {
  if ((options.endpoints.empty() && options.channel == nullptr) || options.name.empty()) {
    return absl::InvalidArgumentError("leader election needs etcd endpoints and a name");
  }
  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(R"({"loadBalancingConfig":[{"round_robin":{}}]})");
  auto stubs = std::make_shared<Stubs>();
  stubs->channel =
      options.channel != nullptr
          ? options.channel
          : grpc::CreateCustomChannel(absl::StrCat("ipv4:", absl::StrJoin(options.endpoints, ",")),
                                      grpc::InsecureChannelCredentials(), args);
  stubs->election = v3electionpb::Election::NewStub(stubs->channel);
  stubs->lease = etcdserverpb::Lease::NewStub(stubs->channel);
  return std::unique_ptr<LeaderElector>(new LeaderElector(std::move(options), std::move(stubs)));
}

LeaderElector::LeaderElector(Options options, std::shared_ptr<Stubs> stubs)
    : options_(std::move(options)), stubs_(std::move(stubs)) {}

LeaderElector::~LeaderElector() { StopKeepAlive(); }

void LeaderElector::StopKeepAlive() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  {
    absl::MutexLock lock(&stubs_->mu);
    if (stubs_->keepalive_context != nullptr) stubs_->keepalive_context->TryCancel();
  }
  if (keepalive_.joinable()) keepalive_.join();
}

void LeaderElector::KeepAlive(int64_t lease) {
  const absl::Duration every = std::max(options_.ttl / 3, absl::Milliseconds(100));
  while (true) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&stubs_->mu);
      stubs_->keepalive_context = &context;
    }
    auto stream = stubs_->lease->LeaseKeepAlive(&context);
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(lease);
    etcdserverpb::LeaseKeepAliveResponse response;
    while (stream->Write(request) && stream->Read(&response) && response.ttl() > 0) {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), every)) break;
    }
    context.TryCancel();
    stream->Finish().IgnoreError();
    {
      absl::MutexLock lock(&stubs_->mu);
      stubs_->keepalive_context = nullptr;
    }
    absl::MutexLock lock(&mu_);
    // Stopped, or the lease is gone (ttl 0): nothing more to keep alive.
    if (stop_ || response.ttl() <= 0) return;
    mu_.AwaitWithTimeout(absl::Condition(&stop_), absl::Milliseconds(100));  // member gone: retry
    if (stop_) return;
  }
}

absl::StatusOr<LeaderElector::LeaderKey> LeaderElector::Campaign(absl::Duration wait) {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(std::max<int64_t>(1, absl::ToInt64Seconds(options_.ttl)));
  etcdserverpb::LeaseGrantResponse granted;
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    grpc::Status s = stubs_->lease->LeaseGrant(&context, grant, &granted);
    if (!s.ok()) return FromGrpc(s, "lease grant");
  }
  StopKeepAlive();  // of an earlier campaign's lease
  {
    absl::MutexLock lock(&mu_);
    stop_ = false;
  }
  keepalive_ = std::thread([this, id = granted.id()] { KeepAlive(id); });

  v3electionpb::CampaignRequest request;
  request.set_name(options_.name);
  request.set_lease(granted.id());
  request.set_value(options_.value);
  v3electionpb::CampaignResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + wait));
  grpc::Status s = stubs_->election->Campaign(&context, request, &response);
  if (!s.ok()) return FromGrpc(s, "campaign");
  LeaderKey key{.key = response.leader().key(),
                .create_revision = response.leader().rev(),
                .lease = response.leader().lease()};
  absl::MutexLock lock(&mu_);
  leader_ = key;
  return key;
}

absl::Status LeaderElector::Resign() {
  std::optional<LeaderKey> key;
  {
    absl::MutexLock lock(&mu_);
    key = std::exchange(leader_, std::nullopt);
  }
  if (!key) return absl::OkStatus();
  v3electionpb::ResignRequest request;
  request.mutable_leader()->set_name(options_.name);
  request.mutable_leader()->set_key(key->key);
  request.mutable_leader()->set_rev(key->create_revision);
  request.mutable_leader()->set_lease(key->lease);
  v3electionpb::ResignResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  absl::Status resigned =
      FromGrpc(stubs_->election->Resign(&context, request, &response), "resign");
  StopKeepAlive();
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(key->lease);
  etcdserverpb::LeaseRevokeResponse revoked;
  grpc::ClientContext revoke_context;
  revoke_context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  stubs_->lease->LeaseRevoke(&revoke_context, revoke, &revoked).ok();
  return resigned;
}

absl::StatusOr<std::string> LeaderElector::Leader() {
  v3electionpb::LeaderRequest request;
  request.set_name(options_.name);
  v3electionpb::LeaderResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  grpc::Status s = stubs_->election->Leader(&context, request, &response);
  // etcd answers UNKNOWN "election: no leader" when nobody leads.
  if (!s.ok() && s.error_message().find("no leader") != std::string::npos) {
    return absl::NotFoundError("no leader");
  }
  if (!s.ok()) return FromGrpc(s, "leader");
  return response.kv().value();
}

absl::StatusOr<store::Txn> LeaderElector::Fence(store::Txn txn) const {
  absl::MutexLock lock(&mu_);
  if (!leader_) return absl::FailedPreconditionError("not the leader: never won the election");
  if (leader_->key.compare(0, options_.store_prefix.size(), options_.store_prefix) != 0) {
    return absl::FailedPreconditionError("the election is outside the store's prefix");
  }
  // Store revisions are etcd revisions - 1 (EtcdRegistryStore).
  txn.compares.push_back(store::Compare::CreateRevisionEquals(
      leader_->key.substr(options_.store_prefix.size()), leader_->create_revision - 1));
  return txn;
}

}  // namespace ppe::cluster
