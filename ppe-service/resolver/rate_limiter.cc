#include "ppe-service/resolver/rate_limiter.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/cpt/region_table.h"

namespace ppe::resolver {

bool RateLimiter::Allow(const std::string& key, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto [it, created] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + absl::ToDoubleSeconds(now - b.updated) * rate_per_s_);
  b.updated = now;
  bool allowed = b.tokens >= 1.0;
  if (allowed) b.tokens -= 1.0;
  if (created && buckets_.size() > max_keys_) Prune(now);
  return allowed;
}

void RateLimiter::Prune(absl::Time now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    double tokens =
        it->second.tokens + absl::ToDoubleSeconds(now - it->second.updated) * rate_per_s_;
    if (tokens >= burst_) {
      buckets_.erase(it++);
    } else {
      ++it;
    }
  }
  // Still over: every key is draining its bucket. Start afresh rather than grow.
  if (buckets_.size() > max_keys_) buckets_.clear();
}

size_t RateLimiter::size() const {
  absl::MutexLock lock(&mu_);
  return buckets_.size();
}

std::string SourcePrefixKey(const std::string& real_remote, const std::string& remote) {
  absl::StatusOr<cpt::Prefix> p = cpt::Prefix::Parse(real_remote);
  if (!p.ok() || p->length == 0) p = cpt::Prefix::Parse(remote);
  if (!p.ok()) return "";
  // Keep the first 24 (IPv4, held mapped in 16 bytes) or 56 bits.
  size_t bytes = p->v4 ? 15 : 7;
  std::string raw(reinterpret_cast<const char*>(p->address.data()), bytes);
  return absl::BytesToHexString(raw);
}

}  // namespace ppe::resolver
