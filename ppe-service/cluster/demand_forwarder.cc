#include "ppe-service/cluster/demand_forwarder.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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

namespace {

std::string Incarnation(const std::string& prefix) {
  absl::BitGen gen;
  return absl::StrFormat("%s/%016x", prefix, absl::Uniform<uint64_t>(gen));
}

}  // namespace

DemandForwarder::DemandForwarder(scaler::DemandTracker& demand, Leader leader, Options options)
    : demand_(demand),
      leader_(std::move(leader)),
      options_(std::move(options)),
      sender_(Incarnation(options_.sender)) {}

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

absl::Status DemandForwarder::Send(const Batch& batch) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
  ppe::v1::ReportAnswersResponse response;
  if (grpc::Status s = stub_->ReportAnswers(&context, batch.request, &response); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("leader ", target_, ": ", s.error_message()));
  }
  if (response.duplicate()) ++stats_.duplicates;
  stats_.sent += batch.requests;
  return absl::OkStatus();
}

void DemandForwarder::KeepInDoubt() {
  if (!in_doubt_) return;
  for (const auto& c : in_doubt_->request.counts())
    demand_.Record(c.cpt(), c.service(), c.answers());
  in_doubt_.reset();
}

absl::Status DemandForwarder::ForwardOnce() {
  absl::MutexLock lock(&mu_);
  absl::Status round = Round();
  absl::MutexLock published(&published_mu_);
  published_ = stats_;
  return round;
}

absl::Status DemandForwarder::Round() {
  stats_.held = 0;
  if (leader_.leads()) {  // its scaler drains the tracker
    KeepInDoubt();
    return absl::OkStatus();
  }
  std::vector<scaler::DemandTracker::Count> counts = demand_.Drain();
  if (counts.empty() && !in_doubt_) return absl::OkStatus();
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
    // The batch in doubt first, as it was: the leader may have counted it.
    if (in_doubt_) {
      stats_.resent += in_doubt_->requests;
      failed = Send(*in_doubt_);
      if (failed.ok()) in_doubt_.reset();
    }
    while (failed.ok() && sent < counts.size()) {
      Batch batch;
      batch.seq = next_seq_++;
      batch.request.set_sender(sender_);
      batch.request.set_batch_seq(batch.seq);
      const size_t end = std::min(counts.size(), sent + options_.batch);
      for (size_t i = sent; i < end; ++i) {
        auto* c = batch.request.add_counts();
        c->set_cpt(counts[i].cpt);
        c->set_service(counts[i].service);
        c->set_answers(counts[i].requests);
        batch.requests += counts[i].requests;
      }
      sent = end;
      failed = Send(batch);
      if (!failed.ok()) in_doubt_ = std::move(batch);
    }
  }
  if (failed.ok()) return absl::OkStatus();
  ++stats_.failures;
  PutBack(counts, sent);
  if (in_doubt_) stats_.held += in_doubt_->request.counts_size();
  spdlog::debug("demand forward failed, {} counts kept, {} in doubt: {}", counts.size() - sent,
                in_doubt_ ? in_doubt_->request.counts_size() : 0, failed.ToString());
  return failed;
}

void DemandForwarder::PutBack(const std::vector<scaler::DemandTracker::Count>& counts,
                              size_t from) {
  const size_t keep = std::min(counts.size(), from + options_.max_held);
  for (size_t i = from; i < keep; ++i) {
    demand_.Record(counts[i].cpt, counts[i].service, counts[i].requests);
    stats_.put_back += counts[i].requests;
  }
  stats_.held += static_cast<int64_t>(keep - from);
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
  absl::MutexLock lock(&published_mu_);
  return published_;
}

bool ForwardedBatches::ApplyOnce(const std::string& sender, uint64_t seq,
                                 const std::function<void()>& apply) {
  if (sender.empty()) {  // a plugin's report
    apply();
    return true;
  }
  absl::MutexLock lock(&mu_);
  auto [it, created] = last_.try_emplace(sender);
  if (!created && seq <= it->second.seq) {
    it->second.used = ++ticket_;
    ++duplicates_;
    return false;
  }
  apply();
  it->second = {.seq = seq, .used = ++ticket_};
  if (last_.size() > max_senders_) {  // rare: forget the sender heard from least recently
    auto oldest = last_.begin();
    for (auto i = last_.begin(); i != last_.end(); ++i) {
      if (i->second.used < oldest->second.used) oldest = i;
    }
    last_.erase(oldest);
  }
  return true;
}

size_t ForwardedBatches::senders() const {
  absl::MutexLock lock(&mu_);
  return last_.size();
}

int64_t ForwardedBatches::duplicates() const {
  absl::MutexLock lock(&mu_);
  return duplicates_;
}

}  // namespace ppe::cluster
