#include "ppe-service/cluster/demand_forwarder.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "ppe/v1/resolver.grpc.pb.h"

namespace ppe::cluster {
namespace {

using Totals = std::map<std::pair<std::string, std::string>, int64_t>;

// A real gRPC server on a loopback port standing in for the leader's Resolver
// service: it applies ReportAnswers through the leader's ForwardedBatches, as
// ResolverServiceImpl does, and keeps what it counted. With `slow_replies`
// set, the next that many replies are held back `reply_delay` after the
// counts were applied: the follower's deadline passes and its reply is lost.
class Leader final : public ppe::v1::Resolver::CallbackService {
 public:
  ~Leader() {
    std::vector<std::thread> late;
    {
      absl::MutexLock lock(&mu_);
      late.swap(late_);
    }
    for (std::thread& t : late) t.join();
  }
  grpc::ServerUnaryReactor* ReportAnswers(grpc::CallbackServerContext* context,
                                          const ppe::v1::ReportAnswersRequest* request,
                                          ppe::v1::ReportAnswersResponse* response) override {
    const bool applied = batches_.ApplyOnce(request->sender(), request->batch_seq(), [&] {
      absl::MutexLock lock(&mu_);
      for (const auto& c : request->counts()) received_[{c.cpt(), c.service()}] += c.answers();
    });
    response->set_duplicate(!applied);
    auto* reactor = context->DefaultReactor();
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (slow_replies_ > 0) {
      --slow_replies_;
      late_.emplace_back([reactor, delay = reply_delay_] {
        absl::SleepFor(delay);
        reactor->Finish(grpc::Status::OK);
      });
    } else {
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }
  Totals received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  void HoldReplies(int n, absl::Duration delay) {
    absl::MutexLock lock(&mu_);
    slow_replies_ = n;
    reply_delay_ = delay;
  }

 private:
  cluster::ForwardedBatches batches_;
  absl::Mutex mu_;
  Totals received_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  int slow_replies_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration reply_delay_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> late_ ABSL_GUARDED_BY(mu_);
};

// The Leader service on a loopback port.
struct LeaderServer {
  LeaderServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&leader);
    server = builder.BuildAndStart();
    REQUIRE(server != nullptr);
    address = "127.0.0.1:" + std::to_string(port);
  }
  ~LeaderServer() { server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5))); }
  Leader leader;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

Totals Sum(const std::vector<scaler::DemandTracker::Count>& counts) {
  Totals out;
  for (const auto& c : counts) out[{c.cpt, c.service}] += c.requests;
  return out;
}

TEST_CASE("demand forwarder: a failed send is resent as it was, then newer counts", "[forwarder]") {
  std::string address = "127.0.0.1:1";  // nobody listens there
  bool leads = false;
  scaler::DemandTracker demand;
  DemandForwarder forwarder(demand,
                            {.leads = [&] { return leads; },
                             .address = [&]() -> absl::StatusOr<std::string> { return address; }},
                            {.timeout = absl::Milliseconds(500), .max_held = 2});
  demand.Record("cpt-a", "video", 5);
  demand.Record("cpt-b", "video", 3);

  // The leader does not answer: the batch is in doubt and kept as it was.
  CHECK(!forwarder.ForwardOnce().ok());
  CHECK(forwarder.stats().failures == 1);
  CHECK(forwarder.stats().put_back == 0);
  CHECK(forwarder.stats().held == 2);  // the batch in doubt's two series
  demand.Record("cpt-a", "video", 1);  // a lookup meanwhile: a newer batch

  LeaderServer server;
  address = server.address;  // a leader elected meanwhile
  REQUIRE(forwarder.ForwardOnce().ok());
  CHECK(server.leader.received() == Totals{{{"cpt-a", "video"}, 6}, {{"cpt-b", "video"}, 3}});
  CHECK(server.leader.calls() == 2);  // the batch in doubt, then the newer one
  CHECK(demand.Drain().empty());
  CHECK(forwarder.stats().sent == 9);
  CHECK(forwarder.stats().resent == 8);
  CHECK(forwarder.stats().held == 0);

  // While this replica leads nothing is taken from its tracker (its scaler's).
  leads = true;
  demand.Record("cpt-a", "video", 2);
  REQUIRE(forwarder.ForwardOnce().ok());
  CHECK(Sum(demand.Drain()) == Totals{{{"cpt-a", "video"}, 2}});
}

TEST_CASE("demand forwarder: a reply lost after the leader counted is not counted twice",
          "[forwarder]") {
  LeaderServer server;
  scaler::DemandTracker demand;
  DemandForwarder forwarder(
      demand,
      {.leads = [] { return false; },
       .address = [&]() -> absl::StatusOr<std::string> { return server.address; }},
      {.timeout = absl::Milliseconds(300), .sender = "replica-b"});
  CHECK(absl::StartsWith(forwarder.sender(), "replica-b/"));
  // The leader counts the batch but is slow to reply: the deadline passes.
  server.leader.HoldReplies(1, absl::Seconds(1));
  demand.Record("cpt-a", "video", 5);
  demand.Record("cpt-b", "video", 3);
  CHECK(absl::IsUnavailable(forwarder.ForwardOnce()));
  CHECK(server.leader.received() == Totals{{{"cpt-a", "video"}, 5}, {{"cpt-b", "video"}, 3}});

  // Newer counts wait behind the batch in doubt; the resend is acknowledged
  // as a duplicate and only the newer counts add.
  demand.Record("cpt-a", "video", 2);
  REQUIRE(forwarder.ForwardOnce().ok());
  CHECK(server.leader.received() == Totals{{{"cpt-a", "video"}, 7}, {{"cpt-b", "video"}, 3}});
  DemandForwarder::Stats stats = forwarder.stats();
  CHECK(stats.duplicates == 1);
  CHECK(stats.resent == 8);
  CHECK(stats.sent == 10);
  CHECK(demand.Drain().empty());

  // Both replies lost in a row: still counted once.
  server.leader.HoldReplies(2, absl::Milliseconds(600));
  demand.Record("cpt-c", "video", 4);
  CHECK(!forwarder.ForwardOnce().ok());
  CHECK(!forwarder.ForwardOnce().ok());
  REQUIRE(forwarder.ForwardOnce().ok());
  CHECK(server.leader.received() ==
        Totals{{{"cpt-a", "video"}, 7}, {{"cpt-b", "video"}, 3}, {{"cpt-c", "video"}, 4}});
  CHECK(forwarder.stats().duplicates == 2);
}

TEST_CASE("forwarded batches: once per sender and seq, a late old seq ignored, new leader counts",
          "[forwarder]") {
  int applied = 0;
  auto apply = [&] { ++applied; };
  ForwardedBatches leader(/*max_senders=*/2);
  CHECK(leader.ApplyOnce("b/1", 1, apply));
  CHECK(!leader.ApplyOnce("b/1", 1, apply));  // the resend
  CHECK(leader.ApplyOnce("b/1", 2, apply));
  CHECK(!leader.ApplyOnce("b/1", 1, apply));  // the first send, arriving late
  CHECK(leader.ApplyOnce("c/1", 1, apply));   // another follower
  CHECK(leader.ApplyOnce("", 0, apply));      // a plugin's report: always counted
  CHECK(leader.ApplyOnce("", 0, apply));
  CHECK(applied == 5);
  CHECK(leader.duplicates() == 2);
  // Bounded: a third sender forgets the one heard from least recently.
  CHECK(leader.ApplyOnce("d/1", 1, apply));
  CHECK(leader.senders() == 2);
  // A new leader has no memory: the batch the old one applied counts again
  // (the documented at-least-once across a leader change).
  ForwardedBatches next;
  CHECK(next.ApplyOnce("b/1", 2, apply));
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
  CHECK(stats.held == 2);
  CHECK(demand.Drain().size() == 2);
}

}  // namespace
}  // namespace ppe::cluster
