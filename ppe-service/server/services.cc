#include "ppe-service/server/services.h"

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
  if (!status_provider_) return FinishNow(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""));
  return OffThread(context, response, [this] { return status_provider_(); });
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
    out->set_profile_fingerprint(cpt::CptCodec::Fingerprint(vm.cpt));
    out->set_created_unix_ms(UnixMillis(vm.created));
  }
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace ppe::server
