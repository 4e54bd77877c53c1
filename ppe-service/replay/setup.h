#pragma once

#include <string>
#include <vector>

namespace ppe::replay {

// One demand series: a profile's requests per bucket.
struct Profile {
  std::string name{};
  std::string tier = "standard";
  std::vector<double> demand{};
};

// What every policy replays: the profiles (all of the same length), the
// bucket, what one VM serves, the boot latency and the scored window.
struct Setup {
  std::vector<Profile> profiles;
  double bucket_seconds = 60;
  double capacity = 1;  // requests per second one VM serves
  double boot_median = 30, boot_sigma = 0.5;
  int warmup_buckets = 0;       // buckets before scoring starts
  std::vector<int> periods;     // seasonal periods, buckets
  int budget = 100000;          // VMs across all profiles (the PPE's global budget)
  bool adaptive_spares = true;  // the PPE policies keep warm spares sized by the scaler
  bool pool_sparse = false;     // and pool sparse profiles on the service's shape

  int buckets() const { return profiles.empty() ? 0 : static_cast<int>(profiles[0].demand.size()); }
  // Requests one VM serves in a bucket.
  double per_vm() const { return capacity * bucket_seconds; }
  // VMs bucket t of profile p needs.
  int Need(const Profile& p, int t) const;
  // The boot latency's 90th percentile, seconds.
  double BootP90() const;
};

}  // namespace ppe::replay
