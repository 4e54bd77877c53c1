#include "ppe-service/scaler/demand_tracker.h"

#include "absl/hash/hash.h"

namespace ppe::scaler {

void DemandTracker::Record(const std::string& cpt, const std::string& service, int64_t requests) {
  Shard& shard = shards_[absl::HashOf(cpt) % kShards];
  absl::MutexLock lock(&shard.mu);
  shard.counts[{cpt, service}] += requests;
}

std::vector<DemandTracker::Count> DemandTracker::Drain() {
  std::vector<Count> out;
  for (Shard& shard : shards_) {
    absl::flat_hash_map<std::pair<std::string, std::string>, int64_t> counts;
    {
      absl::MutexLock lock(&shard.mu);
      counts.swap(shard.counts);
    }
    for (auto& [key, n] : counts) out.push_back({key.first, key.second, n});
  }
  return out;
}

}  // namespace ppe::scaler
