#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ppe::resolver {

// Token buckets per key (a client's source prefix): `burst` tokens, refilled
// at `per_minute`. Memory is bounded: past `max_keys` buckets, full ones are
// dropped (a full bucket is the same as no bucket).
class RateLimiter {
 public:
  RateLimiter(double per_minute, double burst, size_t max_keys = 100000)
      : rate_per_s_(per_minute / 60.0), burst_(burst), max_keys_(max_keys) {}

  bool Allow(const std::string& key, absl::Time now);
  size_t size() const;

 private:
  struct Bucket {
    double tokens;
    absl::Time updated;
  };
  void Prune(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const double rate_per_s_, burst_;
  const size_t max_keys_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

// The key of a client for rate limiting: its /24 (IPv4) or /56 (IPv6), from
// pdns's real-remote or, without one, remote. Empty if neither parses.
std::string SourcePrefixKey(const std::string& real_remote, const std::string& remote);

}  // namespace ppe::resolver
