#include "ppe-service/server/services.h"

#include <deque>

#include "ppe-service/resolver/admin_input.h"

#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/attributes_proto.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/server/grpc_status.h"

namespace ppe::server {
namespace {

// A client key is "<service>|<address>|<subnet>": anything longer is not one.
constexpr size_t kMaxProbeClientKey = 256;

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

void FillProfile(const registry::ProfileRecord& p, ppe::v1::Profile* out) {
  out->set_cpt(p.cpt);
  out->set_fingerprint(cpt::CptCodec::Fingerprint(p.cpt));
  cpt::AttributesToProto(p.attributes, out->mutable_attributes());
  out->set_origin(p.origin);
  out->set_created_unix_ms(UnixMillis(p.created));
  out->set_last_seen_unix_ms(UnixMillis(p.last_seen));
  for (const auto& [service, names] : p.pools) {
    auto* pool = out->add_pools();
    pool->set_service(service);
    for (const auto& n : names) pool->add_vm_names(n);
  }
}

// WatchAnswers on a server without a data plane.
class FailedWatch final : public grpc::ServerWriteReactor<ppe::v1::AnswerUpdate> {
 public:
  FailedWatch() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no answer stream")); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// One WatchAnswers stream: a cursor (epoch, version) into the AnswerStream and
// at most one write in flight; new deltas wake it. Deletes itself when done.
class AnswerWatcher final : public grpc::ServerWriteReactor<ppe::v1::AnswerUpdate> {
 public:
  AnswerWatcher(resolver::AnswerStream& stream, const ppe::v1::WatchAnswersRequest& request)
      : stream_(stream), epoch_(request.epoch()), version_(request.version()) {
    subscription_ = stream_.Subscribe([this] { Pump(); });
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      current_.reset();
      if (!ok) ended_ = true;
    }
    Pump();
  }
  void OnCancel() override { End(); }
  void OnDone() override {
    stream_.Unsubscribe(subscription_);
    delete this;
  }

 private:
  // Writes the next update, or finishes once ended and no write is in flight.
  void Pump() {
    if (stream_.closed()) End();
    const ppe::v1::AnswerUpdate* write = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (ended_) {
        finished_ = true;
      } else {
        if (pending_.empty()) {
          for (auto& u : stream_.Since(epoch_, version_, /*hello=*/first_)) {
            pending_.push_back(std::move(u));
          }
          first_ = false;
        }
        if (pending_.empty()) return;
        current_ = std::move(pending_.front());
        pending_.pop_front();
        epoch_ = current_->epoch();
        version_ = current_->version();
        writing_ = true;
        write = current_.get();
      }
    }
    if (write != nullptr) {
      StartWrite(write);
    } else {
      Finish(grpc::Status::OK);
    }
  }
  void End() {
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      ended_ = true;
    }
    Pump();
  }

  resolver::AnswerStream& stream_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_);
  std::deque<resolver::AnswerStream::Update> pending_ ABSL_GUARDED_BY(mu_);
  resolver::AnswerStream::Update current_;  // the message being written
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool first_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace

grpc::ServerWriteReactor<ppe::v1::AnswerUpdate>* ResolverServiceImpl::WatchAnswers(
    grpc::CallbackServerContext* context, const ppe::v1::WatchAnswersRequest* request) {
  if (stream_ == nullptr) {
    auto* reactor = new FailedWatch();
    return reactor;
  }
  return new AnswerWatcher(*stream_, *request);
}

grpc::ServerUnaryReactor* ResolverServiceImpl::ReportAnswers(
    grpc::CallbackServerContext* context, const ppe::v1::ReportAnswersRequest* request,
    ppe::v1::ReportAnswersResponse* response) {
  if (registry_ == nullptr || demand_ == nullptr) {
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no data plane"));
  }
  absl::Time now = absl::Now();
  int accepted = 0;
  const bool applied = forwarded_.ApplyOnce(request->sender(), request->batch_seq(), [&] {
    for (const auto& c : request->counts()) {
      if (c.answers() <= 0 || !registry_->IsActive(c.cpt())) continue;
      demand_->Record(c.cpt(), c.service(), c.answers());
      registry_->NoteSeen(c.cpt(), now);
      ++accepted;
    }
    for (const std::string& client : request->probe_clients()) {
      if (client.size() <= kMaxProbeClientKey) engine_.NoteProbe(client);
    }
  });
  response->set_accepted(accepted);
  response->set_duplicate(!applied);
  return FinishNow(context, grpc::Status::OK);
}

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
                     PPE_ASSIGN_OR_RETURN(scaler::Scaler::View v, view());
                     return ToProto(v);
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
                     PPE_RETURN_IF_ERROR(vms_->DrainVm(request->name(), release_after));
                     ppe::v1::DrainVmResponse out;
                     out.set_release_after_unix_ms(absl::ToUnixMillis(release_after));
                     return out;
                   });
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetProfileLimits(
    grpc::CallbackServerContext* context, const ppe::v1::SetProfileLimitsRequest* request,
    ppe::v1::ScalingView* response) {
  return ScalingCall(context, response, [this, request]() -> absl::StatusOr<scaler::Scaler::View> {
    PPE_RETURN_IF_ERROR(resolver::CheckLimitsRequest(admin_.services(), *request));
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
  if (absl::Status s = resolver::CheckReport(admin_.services(), *request); !s.ok()) {
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
