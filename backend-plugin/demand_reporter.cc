#include "backend-plugin/demand_reporter.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/hash/hash.h"
#include "ppe-service/common/log.h"

namespace ppe::plugin {

DemandReporter::DemandReporter(Options options) : options_(std::move(options)) {
  stub_ = ppe::v1::Resolver::NewStub(
      grpc::CreateChannel(options_.target, grpc::InsecureChannelCredentials()));
}

DemandReporter::~DemandReporter() { Stop(); }

void DemandReporter::Count(absl::string_view cpt, absl::string_view service) {
  char buf[128];
  if (cpt.size() + service.size() + 1 > sizeof(buf)) return;
  std::copy(cpt.begin(), cpt.end(), buf);
  buf[cpt.size()] = '|';
  std::copy(service.begin(), service.end(), buf + cpt.size() + 1);
  absl::string_view key(buf, cpt.size() + service.size() + 1);
  Shard& shard = shards_[absl::HashOf(key) % kShards];
  absl::MutexLock lock(&shard.mu);
  auto it = shard.counts.find(key);
  if (it != shard.counts.end()) {
    ++it->second;
  } else {
    shard.counts.emplace(std::string(key), 1);
  }
}

void DemandReporter::Start() {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.interval)) Flush();
  });
}

void DemandReporter::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) {
    thread_.join();
    Flush();
  }
}

bool DemandReporter::Flush() {
  absl::MutexLock flush(&flush_mu_);
  Counts taken;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto& [k, n] : shard.counts) taken[k] += n;
    shard.counts.clear();
  }
  if (taken.empty()) return true;
  ppe::v1::ReportAnswersRequest request;
  for (const auto& [k, n] : taken) {
    size_t bar = k.find('|');
    auto* c = request.add_counts();
    c->set_cpt(k.substr(0, bar));
    c->set_service(k.substr(bar + 1));
    c->set_answers(n);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(options_.deadline));
  ppe::v1::ReportAnswersResponse response;
  grpc::Status s = stub_->ReportAnswers(&ctx, request, &response);
  if (s.ok()) return true;
  // Kept for the next report: the table only holds profiles, so this is bounded.
  for (auto& [k, n] : taken) {
    Shard& shard = shards_[absl::HashOf(absl::string_view(k)) % kShards];
    absl::MutexLock lock(&shard.mu);
    shard.counts[k] += n;
  }
  spdlog::debug("demand report failed: {}", s.error_message());
  return false;
}

}  // namespace ppe::plugin
