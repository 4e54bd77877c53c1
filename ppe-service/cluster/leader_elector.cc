#include "ppe-service/cluster/leader_elector.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "ppe-service/common/status_macros.h"

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
  return std::unique_ptr<LeaderElector>(new LeaderElector(std::move(options), std::move(stubs)));
}

LeaderElector::LeaderElector(Options options, std::shared_ptr<Stubs> stubs)
    : options_(std::move(options)), stubs_(std::move(stubs)) {}

LeaderElector::~LeaderElector() { StopKeepAlive(); }

void LeaderElector::StopKeepAlive() {
  absl::MutexLock lock(&mu_);
  if (lease_ != nullptr) lease_->Stop();
}

absl::StatusOr<LeaderElector::LeaderKey> LeaderElector::Campaign(absl::Duration wait) {
  PPE_ASSIGN_OR_RETURN(std::unique_ptr<LeaseKeeper> keeper,
                       LeaseKeeper::Grant(stubs_->channel, {.ttl = options_.ttl,
                                                            .timeout = options_.timeout,
                                                            .what = "leader lease"}));
  const int64_t lease = (keeper)->id();
  std::unique_ptr<LeaseKeeper> earlier;  // an earlier campaign's: stops outside the lock
  {
    absl::MutexLock lock(&mu_);
    earlier = std::exchange(lease_, std::move(keeper));
  }
  earlier.reset();

  v3electionpb::CampaignRequest request;
  request.set_name(options_.name);
  request.set_lease(lease);
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
  std::unique_ptr<LeaseKeeper> lease;
  {
    absl::MutexLock lock(&mu_);
    lease = std::move(lease_);
  }
  if (lease != nullptr) lease->Revoke();
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
