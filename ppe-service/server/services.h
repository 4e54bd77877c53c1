#pragma once

#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/resolver_engine.h"
#include "ppe/v1/admin.grpc.pb.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::server {

// Lookup path. Answers from memory finish inline on the gRPC thread; the rest
// finish from the allocation worker or the deadline timer.
class ResolverServiceImpl final : public ppe::v1::Resolver::CallbackService {
 public:
  explicit ResolverServiceImpl(resolver::ResolverEngine& engine) : engine_(engine) {}

  grpc::ServerUnaryReactor* Resolve(grpc::CallbackServerContext* context,
                                    const ppe::v1::ResolveRequest* request,
                                    ppe::v1::ResolveResponse* response) override;
  grpc::ServerUnaryReactor* ListZones(grpc::CallbackServerContext* context,
                                      const ppe::v1::ListZonesRequest* request,
                                      ppe::v1::ListZonesResponse* response) override;

 private:
  resolver::ResolverEngine& engine_;
};

class AdminServiceImpl final : public ppe::v1::Admin::CallbackService {
 public:
  AdminServiceImpl(resolver::ResolverEngine& engine, registry::Registry& registry)
      : engine_(engine), registry_(registry) {}

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

 private:
  resolver::ResolverEngine& engine_;
  registry::Registry& registry_;
};

}  // namespace ppe::server
