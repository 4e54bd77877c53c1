#include "ppe-service/cluster/demand_forwarder.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ppe-service/cluster/replica.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::cluster {

DemandForwarder::Leader DemandForwarder::LeaderOf(Replica& replica) {
  return {.leads = [&replica] { return replica.is_leader(); },
          .address = [&replica]() -> absl::StatusOr<std::string> {
            PPE_ASSIGN_OR_RETURN(std::vector<Replica::Member> members, replica.Members());
            for (const Replica::Member& m : members) {
              if (m.leader) return m.address;
            }
            return absl::NotFoundError("no leader");
          }};
}

DemandForwarder::DemandForwarder(scaler::DemandTracker& demand, Leader leader, Options options)
    : demand_(demand), leader_(std::move(leader)), options_(std::move(options)) {}

DemandForwarder::~DemandForwarder() { Stop(); }

void DemandForwarder::Start() {
  started_ = true;
  loop_.Start(options_.interval, [this] { ForwardOnce().IgnoreError(); });
}

void DemandForwarder::Stop() {
  if (!started_) return;
  started_ = false;
  loop_.Stop();
  ForwardOnce().IgnoreError();  // a follower shutting down sends what it counted last
}

absl::Status DemandForwarder::ForwardOnce() {
  absl::MutexLock lock(&mu_);
  if (leader_.leads()) return absl::OkStatus();  // its scaler drains the tracker
  std::vector<scaler::DemandTracker::Count> counts = demand_.Drain();
  if (counts.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> leader = leader_.address();
  if (leader.ok() && leader->empty()) leader = absl::NotFoundError("the leader has no address");
  absl::Status failed = leader.status();
  size_t sent = 0;
  if (failed.ok()) {
    if (*leader != target_ || stub_ == nullptr) {
      target_ = *leader;
      stub_ = ppe::v1::Resolver::NewStub(
          grpc::CreateChannel(target_, grpc::InsecureChannelCredentials()));
    }
    while (sent < counts.size()) {
      ppe::v1::ReportAnswersRequest request;
      const size_t end = std::min(counts.size(), sent + options_.batch);
      int64_t requests = 0;
      for (size_t i = sent; i < end; ++i) {
        auto* c = request.add_counts();
        c->set_cpt(counts[i].cpt);
        c->set_service(counts[i].service);
        c->set_answers(counts[i].requests);
        requests += counts[i].requests;
      }
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
      ppe::v1::ReportAnswersResponse response;
      if (grpc::Status s = stub_->ReportAnswers(&context, request, &response); !s.ok()) {
        failed = absl::UnavailableError(absl::StrCat("leader ", target_, ": ", s.error_message()));
        break;
      }
      stats_.sent += requests;
      sent = end;
    }
  }
  if (failed.ok()) return absl::OkStatus();
  ++stats_.failures;
  PutBack(counts, sent);
  spdlog::debug("demand forward failed, {} counts kept: {}", counts.size() - sent,
                failed.ToString());
  return failed;
}

void DemandForwarder::PutBack(const std::vector<scaler::DemandTracker::Count>& counts,
                              size_t from) {
  const size_t keep = std::min(counts.size(), from + options_.max_held);
  for (size_t i = from; i < keep; ++i) {
    demand_.Record(counts[i].cpt, counts[i].service, counts[i].requests);
    stats_.put_back += counts[i].requests;
  }
  if (keep == counts.size()) return;
  int64_t dropped = 0;
  for (size_t i = keep; i < counts.size(); ++i) dropped += counts[i].requests;
  stats_.dropped += dropped;
  spdlog::warn(
      "demand forward: the leader is unreachable and more than {} series are waiting: "
      "dropped {} requests of {} series ({} dropped since start)",
      options_.max_held, dropped, counts.size() - keep, stats_.dropped);
}

DemandForwarder::Stats DemandForwarder::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace ppe::cluster
