// Resolver.ReportAnswers as ppe-server serves it (ResolverServiceImpl, on a
// real gRPC server on a loopback port) fed by a follower's real
// DemandForwarder. The reply is held back past the forwarder's deadline by a
// server interceptor after the handler counted the batch: the follower's
// reply is lost, as when the leader is slow. Registry, VM manager and resolver
// engine are the real ones; the hypervisor is tests/mocks/fake_hypervisor.h
// (a FAKE, unused here).

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "ppe-service/cluster/demand_forwarder.h"
#include "ppe-service/config/config_loader.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/server/services.h"
#include "tests/fixtures/registry_fixture.h"
#include "tests/fixtures/test_config.h"

namespace ppe::server {
namespace {

// Holds the next `held` replies `delay` before their status goes out.
class HoldReplies final : public grpc::experimental::Interceptor {
 public:
  HoldReplies(std::atomic<int>& held, absl::Duration delay) : held_(held), delay_(delay) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      int n = held_.load();
      while (n > 0 && !held_.compare_exchange_weak(n, n - 1)) {
      }
      if (n > 0) absl::SleepFor(delay_);
    }
    methods->Proceed();
  }

 private:
  std::atomic<int>& held_;
  const absl::Duration delay_;
};

class HoldRepliesFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  HoldRepliesFactory(std::atomic<int>& held, absl::Duration delay) : held_(held), delay_(delay) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new HoldReplies(held_, delay_);
  }

 private:
  std::atomic<int>& held_;
  const absl::Duration delay_;
};

using Totals = std::map<std::pair<std::string, std::string>, int64_t>;

Totals Sum(const std::vector<scaler::DemandTracker::Count>& counts) {
  Totals out;
  for (const auto& c : counts) out[{c.cpt, c.service}] += c.requests;
  return out;
}

TEST_CASE("ReportAnswers: a follower's batch whose reply was lost is counted once by the leader",
          "[server]") {
  testing::VmFixture fx;
  const ppe::config::v1::PpeConfig config = testing::VideoZoneConfig();
  const cpt::CptCodec codec = testing::TestCodec();
  cpt::RegionTable regions;
  TimerQueue timers;
  resolver::ResolverEngine engine(resolver::ResolverEngine::OptionsFromConfig(config), codec,
                                  regions, fx.registry, fx.vms, timers, fx.clock);
  scaler::DemandTracker leader_demand;  // the leader's: its scaler drains it
  ResolverServiceImpl service(engine);
  service.set_data_plane(nullptr, &fx.registry, &leader_demand);
  for (const char* cpt : {"cpt-a", "cpt-b"}) {
    REQUIRE(fx.registry.RegisterProfile(cpt, {}, "admin", fx.clock.Now()).ok());
  }

  std::atomic<int> held{0};
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> hold;
  hold.push_back(std::make_unique<HoldRepliesFactory>(held, absl::Milliseconds(800)));
  builder.experimental().SetInterceptorCreators(std::move(hold));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);
  const std::string address = "127.0.0.1:" + std::to_string(port);

  scaler::DemandTracker follower_demand;
  cluster::DemandForwarder forwarder(
      follower_demand,
      {.leads = [] { return false; },
       .address = [&]() -> absl::StatusOr<std::string> { return address; }},
      {.timeout = absl::Milliseconds(300), .sender = "replica-b"});

  held = 1;  // the leader counts the batch; its reply comes after the deadline
  follower_demand.Record("cpt-a", "video", 5);
  follower_demand.Record("cpt-b", "video", 3);
  CHECK(absl::IsUnavailable(forwarder.ForwardOnce()));
  Totals counted = Sum(leader_demand.Drain());
  CHECK(counted == Totals{{{"cpt-a", "video"}, 5}, {{"cpt-b", "video"}, 3}});

  // The follower resends the batch, then what it counted since.
  follower_demand.Record("cpt-a", "video", 2);
  REQUIRE(forwarder.ForwardOnce().ok());
  counted = Sum(leader_demand.Drain());
  CHECK(counted == Totals{{{"cpt-a", "video"}, 2}});  // the resend counted nothing
  CHECK(forwarder.stats().duplicates == 1);
  CHECK(forwarder.stats().sent == 10);
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
}

}  // namespace
}  // namespace ppe::server
