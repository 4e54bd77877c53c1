#include "backend-plugin/demand_reporter.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::plugin {
namespace {

// A real gRPC server on a loopback port that keeps what ReportAnswers received.
class Recorder final : public ppe::v1::Resolver::CallbackService {
 public:
  grpc::ServerUnaryReactor* ReportAnswers(grpc::CallbackServerContext* context,
                                          const ppe::v1::ReportAnswersRequest* request,
                                          ppe::v1::ReportAnswersResponse* response) override {
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*request);
    }
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::vector<std::string> Probes() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& r : requests_)
      out.insert(out.end(), r.probe_clients().begin(), r.probe_clients().end());
    return out;
  }

 private:
  absl::Mutex mu_;
  std::vector<ppe::v1::ReportAnswersRequest> requests_ ABSL_GUARDED_BY(mu_);
};

struct Server {
  Recorder recorder;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  Server() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&recorder);
    server = builder.BuildAndStart();
  }
  ~Server() { server->Shutdown(); }
};

TEST_CASE("a tagged local answer right after an untagged forward is reported as a probe",
          "[dataplane]") {
  Server s;
  REQUIRE(s.port > 0);
  DemandReporter reporter({.target = "127.0.0.1:" + std::to_string(s.port)});
  absl::Time t0 = absl::Now();
  const std::string minimiser = "db|192.0.2.1|198.51.100.0/24";
  const std::string slow = "db|192.0.2.2|203.0.113.0/24";
  const std::string tagged_only = "db|192.0.2.3|203.0.113.0/24";

  reporter.NoteUntaggedForward(minimiser, t0);
  reporter.NoteTaggedAnswer(minimiser, t0 + absl::Milliseconds(5));  // within the window
  reporter.NoteUntaggedForward(slow, t0);
  reporter.NoteTaggedAnswer(slow, t0 + absl::Seconds(3));  // too late: real demand
  reporter.NoteTaggedAnswer(tagged_only, t0);              // no untagged forward before it
  REQUIRE(reporter.Flush());
  CHECK(s.recorder.Probes() == std::vector<std::string>{minimiser});

  // Reported once: a second tagged answer (no new forward) adds nothing.
  reporter.NoteTaggedAnswer(minimiser, t0 + absl::Milliseconds(10));
  REQUIRE(reporter.Flush());
  CHECK(s.recorder.Probes() == std::vector<std::string>{minimiser});
}

TEST_CASE("remembered untagged forwards are bounded", "[dataplane]") {
  Server s;
  DemandReporter reporter(
      {.target = "127.0.0.1:" + std::to_string(s.port), .max_recent_forwards = 4});
  absl::Time t0 = absl::Now();
  for (int i = 0; i < 100; ++i) reporter.NoteUntaggedForward("db|c" + std::to_string(i) + "|x", t0);
  // Only the first four are tracked; the rest of a flood is not remembered.
  reporter.NoteTaggedAnswer("db|c3|x", t0);
  reporter.NoteTaggedAnswer("db|c50|x", t0);
  REQUIRE(reporter.Flush());
  CHECK(s.recorder.Probes() == std::vector<std::string>{"db|c3|x"});
}

}  // namespace
}  // namespace ppe::plugin
