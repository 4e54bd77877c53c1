#pragma once

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace ppe::scaler {

// Request counts per (CPT, service) since the last Drain, kept in memory: the
// lookup path only increments a counter in one of 16 shards, and nothing is
// written per query. The scaler drains it once per bucket.
class DemandTracker {
 public:
  struct Count {
    std::string cpt;
    std::string service;
    int64_t requests;
  };

  void Record(const std::string& cpt, const std::string& service, int64_t requests = 1);
  std::vector<Count> Drain();

 private:
  static constexpr int kShards = 16;
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::pair<std::string, std::string>, int64_t> counts ABSL_GUARDED_BY(mu);
  };
  std::array<Shard, kShards> shards_;
};

}  // namespace ppe::scaler
