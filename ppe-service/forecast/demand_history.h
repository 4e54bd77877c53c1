#pragma once

// Demand history of one (CPT, service) series: request counts per bucket
// (default one minute) in a bounded ring, plus a coarser roll-up ring (default
// hourly sums) that keeps weeks of history for long seasonalities.
//
// Memory per series is fixed at construction: 4 bytes per fine bucket plus 4
// bytes per coarse bucket plus a constant (MemoryBytes() reports it). With the
// defaults (3 days of minutes, 8 weeks of hours) that is about 23 KB.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace ppe::forecast {

struct DemandHistoryOptions {
  int capacity = 3 * 1440;        // Fine buckets kept (3 days of minutes).
  int rollup_factor = 60;         // Fine buckets per coarse bucket (1 hour).
  int rollup_capacity = 8 * 168;  // Coarse buckets kept (8 weeks of hours).
};

class DemandHistory {
 public:
  explicit DemandHistory(const DemandHistoryOptions& options = {});

  // Adds `count` requests to bucket `bucket` (an absolute index, e.g. minutes
  // since the epoch). Buckets must not go backwards by more than the ring:
  // a bucket equal to an earlier one still in the ring accumulates; skipped
  // buckets count as zero requests. O(1) amortised (O(gap) for a gap).
  absl::Status Add(int64_t bucket, double count);

  // Fine-grained counts, oldest first, up to and including the last bucket.
  std::vector<double> Values() const;
  // The newest `k` fine buckets (all held if fewer), oldest first: O(k).
  std::vector<double> Tail(int k) const;
  // Complete coarse buckets (sums of `rollup_factor` fine buckets), oldest first.
  std::vector<double> Rollup() const;

  int64_t last_bucket() const { return last_; }
  bool empty() const { return size_ == 0; }
  int size() const { return size_; }
  // Bytes used by this object including its rings.
  size_t MemoryBytes() const;

 private:
  void Advance();  // Opens bucket last_ + 1 (zero).

  DemandHistoryOptions options_;
  std::vector<float> ring_;
  std::vector<float> rollup_;
  int64_t last_ = -1;  // Index of the newest bucket.
  int size_ = 0;       // Fine buckets held.
  int rollup_size_ = 0;
  double partial_ = 0;  // Sum of the current, incomplete coarse bucket.
};

}  // namespace ppe::forecast
