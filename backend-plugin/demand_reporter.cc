#include "backend-plugin/demand_reporter.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/container/flat_hash_map.h"
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

void DemandReporter::NoteUntaggedForward(absl::string_view client, absl::Time now) {
  absl::MutexLock lock(&probe_mu_);
  if (recent_forwards_.size() >= options_.max_recent_forwards) {
    absl::erase_if(recent_forwards_,
                   [&](const auto& e) { return now - e.second > options_.probe_window; });
    if (recent_forwards_.size() >= options_.max_recent_forwards) return;  // a flood: not tracked
  }
  recent_forwards_[client] = now;
  recent_count_.store(recent_forwards_.size(), std::memory_order_relaxed);
}

void DemandReporter::NoteTaggedAnswer(absl::string_view client, absl::Time now) {
  if (recent_count_.load(std::memory_order_relaxed) == 0) return;
  absl::MutexLock lock(&probe_mu_);
  auto it = recent_forwards_.find(client);
  if (it == recent_forwards_.end()) return;
  if (now - it->second <= options_.probe_window) probe_clients_.push_back(it->first);
  recent_forwards_.erase(it);
  recent_count_.store(recent_forwards_.size(), std::memory_order_relaxed);
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
  std::vector<std::string> probes;
  {
    absl::MutexLock lock(&probe_mu_);
    probes.swap(probe_clients_);
  }
  if (taken.empty() && probes.empty()) return true;
  ppe::v1::ReportAnswersRequest request;
  // Probes are reported once: a late report is useless past the PPE's window.
  for (std::string& p : probes) request.add_probe_clients(std::move(p));
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
