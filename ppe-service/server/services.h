#pragma once

#include "ppe-service/cluster/demand_forwarder.h"
#include "ppe-service/common/thread_pool.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/answer_stream.h"
#include "ppe-service/resolver/profile_admin.h"
#include "ppe-service/resolver/resolver_engine.h"
#include "ppe-service/scaler/scaler.h"
#include "ppe-service/server/admin_auth.h"
#include "ppe/v1/admin.grpc.pb.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::server {

// Lookup path. Answers from memory finish inline on the gRPC thread; the rest
// finish from the allocation worker or the deadline timer.
class ResolverServiceImpl final : public ppe::v1::Resolver::CallbackService {
 public:
  explicit ResolverServiceImpl(resolver::ResolverEngine& engine) : engine_(engine) {}
  // The data plane: WatchAnswers streams `stream`; ReportAnswers records the
  // plugins' local answers in `demand` and as profile activity in `registry`;
  // a follower's forwarded batch (sender, seq) is counted once
  // (cluster::ForwardedBatches).
  void set_data_plane(resolver::AnswerStream* stream, registry::Registry* registry,
                      scaler::DemandTracker* demand) {
    stream_ = stream;
    registry_ = registry;
    demand_ = demand;
  }

  grpc::ServerUnaryReactor* Resolve(grpc::CallbackServerContext* context,
                                    const ppe::v1::ResolveRequest* request,
                                    ppe::v1::ResolveResponse* response) override;
  grpc::ServerUnaryReactor* ListZones(grpc::CallbackServerContext* context,
                                      const ppe::v1::ListZonesRequest* request,
                                      ppe::v1::ListZonesResponse* response) override;
  grpc::ServerWriteReactor<ppe::v1::AnswerUpdate>* WatchAnswers(
      grpc::CallbackServerContext* context, const ppe::v1::WatchAnswersRequest* request) override;
  grpc::ServerUnaryReactor* ReportAnswers(grpc::CallbackServerContext* context,
                                          const ppe::v1::ReportAnswersRequest* request,
                                          ppe::v1::ReportAnswersResponse* response) override;

  // The followers' batches this replica applied or acknowledged as duplicates.
  const cluster::ForwardedBatches& forwarded() const { return forwarded_; }

 private:
  resolver::ResolverEngine& engine_;
  resolver::AnswerStream* stream_ = nullptr;
  registry::Registry* registry_ = nullptr;
  scaler::DemandTracker* demand_ = nullptr;
  cluster::ForwardedBatches forwarded_;
};

class AdminServiceImpl final : public ppe::v1::Admin::CallbackService {
 public:
  // Reads answer from the registry's memory inline; calls that write the
  // durable registry run on `workers`.
  AdminServiceImpl(resolver::ProfileAdmin& admin, registry::Registry& registry, ThreadPool& workers)
      : admin_(admin), registry_(registry), workers_(workers) {}
  // GetStatus asks this (it calls the hypervisor: it runs on a worker).
  using StatusProvider = std::function<absl::StatusOr<ppe::v1::StatusResponse>()>;
  void set_status_provider(StatusProvider provider) { status_provider_ = std::move(provider); }
  // The scaling calls (DrainVm, SetProfileLimits, GetForecast, TriggerScale).
  void set_scaling(scaler::Scaler* scaler, vm::VmManager* vms, scaler::DemandTracker* demand,
                   absl::Duration drain, absl::Duration bucket) {
    scaler_ = scaler;
    demand_ = demand;
    vms_ = vms;
    drain_ = drain;
    bucket_ = bucket;
  }
  // Every handler first asks the authorizer; until one is set every call is refused.
  void set_authorizer(const AdminAuthorizer* authorizer) { authorizer_ = authorizer; }

  grpc::ServerUnaryReactor* IssueCpt(grpc::CallbackServerContext* context,
                                     const ppe::v1::IssueCptRequest* request,
                                     ppe::v1::IssueCptResponse* response) override;
  grpc::ServerUnaryReactor* ListProfiles(grpc::CallbackServerContext* context,
                                         const ppe::v1::ListProfilesRequest* request,
                                         ppe::v1::ListProfilesResponse* response) override;
  grpc::ServerUnaryReactor* GetProfile(grpc::CallbackServerContext* context,
                                       const ppe::v1::GetProfileRequest* request,
                                       ppe::v1::Profile* response) override;
  grpc::ServerUnaryReactor* ListVms(grpc::CallbackServerContext* context,
                                    const ppe::v1::ListVmsRequest* request,
                                    ppe::v1::ListVmsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateAttributes(grpc::CallbackServerContext* context,
                                             const ppe::v1::UpdateAttributesRequest* request,
                                             ppe::v1::IssueCptResponse* response) override;
  grpc::ServerUnaryReactor* InvalidateProfile(
      grpc::CallbackServerContext* context, const ppe::v1::InvalidateProfileRequest* request,
      ppe::v1::InvalidateProfileResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const ppe::v1::GetStatusRequest* request,
                                      ppe::v1::StatusResponse* response) override;
  grpc::ServerUnaryReactor* DrainVm(grpc::CallbackServerContext* context,
                                    const ppe::v1::DrainVmRequest* request,
                                    ppe::v1::DrainVmResponse* response) override;
  grpc::ServerUnaryReactor* SetProfileLimits(grpc::CallbackServerContext* context,
                                             const ppe::v1::SetProfileLimitsRequest* request,
                                             ppe::v1::ScalingView* response) override;
  grpc::ServerUnaryReactor* GetForecast(grpc::CallbackServerContext* context,
                                        const ppe::v1::ScalingRequest* request,
                                        ppe::v1::ScalingView* response) override;
  grpc::ServerUnaryReactor* TriggerScale(grpc::CallbackServerContext* context,
                                         const ppe::v1::ScalingRequest* request,
                                         ppe::v1::ScalingView* response) override;
  grpc::ServerUnaryReactor* ReportDemand(grpc::CallbackServerContext* context,
                                         const ppe::v1::ReportDemandRequest* request,
                                         ppe::v1::ReportDemandResponse* response) override;

 private:
  grpc::Status Authorize(const grpc::CallbackServerContext* context) const;
  // Runs `work` on a worker and finishes the call with its result.
  template <typename Response, typename Work>
  grpc::ServerUnaryReactor* OffThread(grpc::CallbackServerContext* context, Response* response,
                                      Work work);

  resolver::ProfileAdmin& admin_;
  registry::Registry& registry_;
  ThreadPool& workers_;
  StatusProvider status_provider_;
  ppe::v1::ScalingView ToProto(const scaler::Scaler::View& v) const;
  // Authorizes, then runs `view` (a Scaler call) on a worker and answers its view.
  template <typename ViewFn>
  grpc::ServerUnaryReactor* ScalingCall(grpc::CallbackServerContext* context,
                                        ppe::v1::ScalingView* response, ViewFn view);
  scaler::Scaler* scaler_ = nullptr;
  scaler::DemandTracker* demand_ = nullptr;
  vm::VmManager* vms_ = nullptr;
  absl::Duration drain_, bucket_;
  const AdminAuthorizer* authorizer_ = nullptr;
};

}  // namespace ppe::server
