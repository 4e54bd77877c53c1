#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace ppe {

// A lock-free latency histogram for hot paths: fixed bucket bounds, relaxed
// atomic counters; read at scrape time.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBoundsSeconds = {
      50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3};

  void Observe(absl::Duration d) {
    double s = absl::ToDoubleSeconds(d);
    size_t i = 0;
    while (i < kBoundsSeconds.size() && s > kBoundsSeconds[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_relaxed);
  }
  // Count in bucket i (i == kBoundsSeconds.size(): above the last bound).
  uint64_t count(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  double sum_seconds() const { return sum_ns_.load(std::memory_order_relaxed) * 1e-9; }

 private:
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size() + 1> counts_{};
  std::atomic<int64_t> sum_ns_{0};
};

}  // namespace ppe
