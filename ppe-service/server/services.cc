#include "ppe-service/server/services.h"

#include "ppe-service/resolver/admin_input.h"

#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/server/grpc_status.h"

namespace ppe::server {
namespace {

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

void FillProfile(const registry::ProfileRecord& p, ppe::v1::Profile* out) {
  out->set_cpt(p.cpt);
  out->set_fingerprint(cpt::CptCodec::Fingerprint(p.cpt));
  auto* a = out->mutable_attributes();
  a->set_region(p.attributes.region);
  a->set_device_class(p.attributes.device_class);
  a->set_service_tier(p.attributes.service_tier);
  a->set_time_bucket(p.attributes.time_bucket);
  a->set_request_pattern(p.attributes.request_pattern);
  out->set_origin(p.origin);
  out->set_created_unix_ms(UnixMillis(p.created));
  out->set_last_seen_unix_ms(UnixMillis(p.last_seen));
  for (const auto& [service, names] : p.pools) {
    auto* pool = out->add_pools();
    pool->set_service(service);
    for (const auto& n : names) pool->add_vm_names(n);
  }
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

grpc::Status AdminServiceImpl::Authorize(const grpc::CallbackServerContext* context) const {
  if (authorizer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "no admin authorizer");
  }
  return authorizer_->Authorize(*context);
}

grpc::ServerUnaryReactor* ResolverServiceImpl::Resolve(grpc::CallbackServerContext* context,
                                                       const ppe::v1::ResolveRequest* request,
                                                       ppe::v1::ResolveResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  engine_.Resolve(*request, [reactor, response](ppe::v1::ResolveResponse answer) {
    *response = std::move(answer);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* ResolverServiceImpl::ListZones(grpc::CallbackServerContext* context,
                                                         const ppe::v1::ListZonesRequest*,
                                                         ppe::v1::ListZonesResponse* response) {
  *response = engine_.Zones();
  return FinishNow(context, grpc::Status::OK);
}

template <typename Response, typename Work>
grpc::ServerUnaryReactor* AdminServiceImpl::OffThread(grpc::CallbackServerContext* context,
                                                      Response* response, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  workers_.Schedule([reactor, response, work = std::move(work)]() mutable {
    absl::StatusOr<Response> result = work();
    if (result.ok()) *response = std::move(*result);
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::IssueCpt(grpc::CallbackServerContext* context,
                                                     const ppe::v1::IssueCptRequest* request,
                                                     ppe::v1::IssueCptResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  return OffThread(context, response, [this, request] { return admin_.IssueCpt(*request); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UpdateAttributes(
    grpc::CallbackServerContext* context, const ppe::v1::UpdateAttributesRequest* request,
    ppe::v1::IssueCptResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  return OffThread(context, response,
                   [this, request] { return admin_.UpdateAttributes(*request); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::InvalidateProfile(
    grpc::CallbackServerContext* context, const ppe::v1::InvalidateProfileRequest* request,
    ppe::v1::InvalidateProfileResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  return OffThread(context, response, [this, request] { return admin_.Invalidate(*request); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetStatus(grpc::CallbackServerContext* context,
                                                      const ppe::v1::GetStatusRequest*,
                                                      ppe::v1::StatusResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  if (!status_provider_)
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
  return OffThread(context, response, [this] { return status_provider_(); });
}

ppe::v1::ScalingView AdminServiceImpl::ToProto(const scaler::Scaler::View& v) const {
  ppe::v1::ScalingView out;
  out.set_cpt(v.cpt);
  out.set_service(v.service);
  out.set_model(v.model);
  for (double x : v.history) out.add_history(x);
  for (double x : v.mean) out.add_mean(x);
  for (double x : v.lower) out.add_lower(x);
  for (double x : v.upper) out.add_upper(x);
  out.set_lead_buckets(v.lead_buckets);
  out.set_desired_vms(v.desired);
  out.set_current_vms(v.current);
  out.set_min_vms(v.min_vms);
  out.set_max_vms(v.max_vms);
  out.set_mean_abs_error(v.mean_abs_error);
  out.set_bucket_ms(absl::ToInt64Milliseconds(bucket_));
  return out;
}

template <typename ViewFn>
grpc::ServerUnaryReactor* AdminServiceImpl::ScalingCall(grpc::CallbackServerContext* context,
                                                        ppe::v1::ScalingView* response,
                                                        ViewFn view) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  if (scaler_ == nullptr) {
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no scaler"));
  }
  return OffThread(context, response,
                   [this, view = std::move(view)]() -> absl::StatusOr<ppe::v1::ScalingView> {
                     absl::StatusOr<scaler::Scaler::View> v = view();
                     if (!v.ok()) return v.status();
                     return ToProto(*v);
                   });
}

grpc::ServerUnaryReactor* AdminServiceImpl::DrainVm(grpc::CallbackServerContext* context,
                                                    const ppe::v1::DrainVmRequest* request,
                                                    ppe::v1::DrainVmResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  if (vms_ == nullptr) return FinishNow(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
  return OffThread(context, response,
                   [this, request]() -> absl::StatusOr<ppe::v1::DrainVmResponse> {
                     absl::Time release_after = absl::Now() + drain_;
                     if (absl::Status s = vms_->DrainVm(request->name(), release_after); !s.ok())
                       return s;
                     ppe::v1::DrainVmResponse out;
                     out.set_release_after_unix_ms(absl::ToUnixMillis(release_after));
                     return out;
                   });
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetProfileLimits(
    grpc::CallbackServerContext* context, const ppe::v1::SetProfileLimitsRequest* request,
    ppe::v1::ScalingView* response) {
  return ScalingCall(context, response, [this, request]() -> absl::StatusOr<scaler::Scaler::View> {
    if (absl::Status s = resolver::CheckLimitsRequest(admin_.config(), *request); !s.ok()) return s;
    if (absl::Status s = scaler_->SetLimits(request->cpt(), request->service(), request->min_vms(),
                                            request->max_vms());
        !s.ok()) {
      return s;
    }
    return scaler_->ScaleNow(request->cpt(), request->service());
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetForecast(grpc::CallbackServerContext* context,
                                                        const ppe::v1::ScalingRequest* request,
                                                        ppe::v1::ScalingView* response) {
  return ScalingCall(context, response, [this, request] {
    return scaler_->Describe(request->cpt(), request->service());
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::TriggerScale(grpc::CallbackServerContext* context,
                                                         const ppe::v1::ScalingRequest* request,
                                                         ppe::v1::ScalingView* response) {
  return ScalingCall(context, response, [this, request] {
    return scaler_->ScaleNow(request->cpt(), request->service());
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ReportDemand(
    grpc::CallbackServerContext* context, const ppe::v1::ReportDemandRequest* request,
    ppe::v1::ReportDemandResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  if (demand_ == nullptr)
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
  if (absl::Status s = resolver::CheckReport(admin_.config(), *request); !s.ok()) {
    return FinishNow(context, ToGrpcStatus(s));
  }
  int accepted = 0;
  for (const auto& e : request->entries()) {
    if (e.requests() <= 0 || !registry_.IsActive(e.cpt())) continue;
    demand_->Record(e.cpt(), e.service(), e.requests());
    ++accepted;
  }
  response->set_accepted(accepted);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListProfiles(grpc::CallbackServerContext* context,
                                                         const ppe::v1::ListProfilesRequest*,
                                                         ppe::v1::ListProfilesResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  for (const auto& p : registry_.ListProfiles()) FillProfile(p, response->add_profiles());
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetProfile(grpc::CallbackServerContext* context,
                                                       const ppe::v1::GetProfileRequest* request,
                                                       ppe::v1::Profile* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  std::optional<registry::ProfileRecord> p = registry_.GetProfile(request->cpt());
  if (!p) return FinishNow(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such profile"));
  FillProfile(*p, response);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListVms(grpc::CallbackServerContext* context,
                                                    const ppe::v1::ListVmsRequest* request,
                                                    ppe::v1::ListVmsResponse* response) {
  if (grpc::Status s = Authorize(context); !s.ok()) return FinishNow(context, s);
  for (const auto& vm : registry_.ListVms(request->cpt())) {
    ppe::v1::Vm* out = response->add_vms();
    out->set_name(vm.name);
    out->set_service(vm.service);
    out->set_workload_class(vm.workload_class);
    out->set_state(std::string(registry::VmStateName(vm.state)));
    out->set_ip(vm.ip);
    out->set_mac(vm.mac);
    out->set_cpt(vm.cpt);
    out->set_profile_fingerprint(vm.cpt.empty() ? "(spare)" : cpt::CptCodec::Fingerprint(vm.cpt));
    out->set_created_unix_ms(UnixMillis(vm.created));
  }
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace ppe::server
