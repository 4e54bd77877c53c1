#include "ppe-service/cluster/demand_forwarder.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::cluster {
namespace {

using Totals = std::map<std::pair<std::string, std::string>, int64_t>;

// A real gRPC server on a loopback port standing in for the leader's Resolver
// service: it keeps what ReportAnswers received.
class Leader final : public ppe::v1::Resolver::CallbackService {
 public:
  grpc::ServerUnaryReactor* ReportAnswers(grpc::CallbackServerContext* context,
                                          const ppe::v1::ReportAnswersRequest* request,
                                          ppe::v1::ReportAnswersResponse*) override {
    {
      absl::MutexLock lock(&mu_);
      for (const auto& c : request->counts()) received_[{c.cpt(), c.service()}] += c.answers();
    }
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  Totals received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  absl::Mutex mu_;
  Totals received_ ABSL_GUARDED_BY(mu_);
};

Totals Sum(const std::vector<scaler::DemandTracker::Count>& counts) {
  Totals out;
  for (const auto& c : counts) out[{c.cpt, c.service}] += c.requests;
  return out;
}

TEST_CASE("demand forwarder: a failed send puts the counts back, the next one delivers them",
          "[forwarder]") {
  std::string address = "127.0.0.1:1";  // nobody listens there
  bool leads = false;
  scaler::DemandTracker demand;
  DemandForwarder forwarder(demand,
                            {.leads = [&] { return leads; },
                             .address = [&]() -> absl::StatusOr<std::string> { return address; }},
                            {.timeout = absl::Milliseconds(500), .max_held = 2});
  demand.Record("cpt-a", "video", 5);
  demand.Record("cpt-b", "video", 3);

  // The leader does not answer: the counts go back.
  CHECK(!forwarder.ForwardOnce().ok());
  CHECK(forwarder.stats().put_back == 8);
  demand.Record("cpt-a", "video", 1);  // a lookup meanwhile adds to them

  Leader leader;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&leader);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);
  address = "127.0.0.1:" + std::to_string(port);  // a leader elected meanwhile
  REQUIRE(forwarder.ForwardOnce().ok());
  CHECK(leader.received() == Totals{{{"cpt-a", "video"}, 6}, {{"cpt-b", "video"}, 3}});
  CHECK(demand.Drain().empty());
  CHECK(forwarder.stats().sent == 9);

  // While this replica leads nothing is taken from its tracker (its scaler's).
  leads = true;
  demand.Record("cpt-a", "video", 2);
  REQUIRE(forwarder.ForwardOnce().ok());
  CHECK(Sum(demand.Drain()) == Totals{{{"cpt-a", "video"}, 2}});
  server->Shutdown();
}

TEST_CASE("demand forwarder: with no leader, at most max_held series are kept, the rest counted",
          "[forwarder]") {
  scaler::DemandTracker demand;
  DemandForwarder forwarder(
      demand,
      {.leads = [] { return false; },
       .address = []() -> absl::StatusOr<std::string> { return absl::NotFoundError("no leader"); }},
      {.max_held = 2});
  demand.Record("cpt-a", "video", 1);
  demand.Record("cpt-b", "video", 2);
  demand.Record("cpt-c", "video", 4);
  absl::Status s = forwarder.ForwardOnce();
  CHECK(absl::IsNotFound(s));
  DemandForwarder::Stats stats = forwarder.stats();
  CHECK(stats.failures == 1);
  CHECK(stats.put_back + stats.dropped == 7);
  CHECK(stats.dropped > 0);
  CHECK(demand.Drain().size() == 2);
}

}  // namespace
}  // namespace ppe::cluster
