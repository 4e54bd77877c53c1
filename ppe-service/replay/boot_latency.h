#pragma once

#include <cmath>
#include <random>
#include <vector>

namespace ppe::replay {

// Simulated boot latencies in creation order: the k-th VM a policy creates
// boots in At(k) seconds, lognormal with the given median and sigma (sigma 0:
// always the median). Every policy draws the same sequence from a fresh copy.
class BootLatency {
 public:
  BootLatency(double median, double sigma) : median_(median), sigma_(sigma) {}
  double At(size_t k) {
    std::lognormal_distribution<double> dist(std::log(median_), sigma_ > 0 ? sigma_ : 1);
    while (drawn_.size() <= k) {
      double v = dist(rng_);
      drawn_.push_back(sigma_ > 0 ? v : median_);
    }
    return drawn_[k];
  }
  // The 90th percentile of the distribution, seconds.
  double P90() const { return median_ * std::exp(1.2816 * sigma_); }
  double median() const { return median_; }
  double sigma() const { return sigma_; }

 private:
  double median_, sigma_;
  std::mt19937_64 rng_{20261203};
  std::vector<double> drawn_;
};

}  // namespace ppe::replay
