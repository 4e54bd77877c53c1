#include "ppe-service/resolver/cohort_demand.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ppe::resolver {

std::string CohortDemand::ClientKey(const std::string& service, const std::string& remote,
                                    const std::string& real_remote) {
  return absl::StrCat(service, "|", remote, "|", real_remote);
}

int64_t CohortDemand::BucketOf(absl::Time t) const {
  return absl::ToUnixMillis(t) / std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.bucket));
}

std::vector<CohortDemand::Due> CohortDemand::RecordUntagged(
    const std::string& client, const std::string& source, const std::string& cpt,
    const std::string& service, const cpt::Attributes& attributes, absl::Time now) {
  std::vector<Due> due;
  absl::MutexLock lock(&mu_);
  Settle(now, due);
  if (pending_.size() >= options_.max_tracked) {
    ++stats_.dropped;
    return due;
  }
  uint64_t seq = next_seq_++;
  pending_.push_back(Pending{.client = client,
                             .source = source,
                             .cpt = cpt,
                             .service = service,
                             .attributes = attributes,
                             .at = now,
                             .seq = seq});
  last_pending_[client] = seq;
  return due;
}

void CohortDemand::RecordTagged(const std::string& client, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = last_pending_.find(client);
  if (it == last_pending_.end() || pending_.empty()) return;
  uint64_t seq = it->second;
  last_pending_.erase(it);
  if (seq < pending_.front().seq) return;  // already settled
  Pending& p = pending_[seq - pending_.front().seq];
  if (now - p.at <= options_.probe_window) p.probe = true;
}

void CohortDemand::Settle(absl::Time now, std::vector<Due>& due) {
  while (!pending_.empty() && now - pending_.front().at > options_.probe_window) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    if (auto it = last_pending_.find(p.client); it != last_pending_.end() && it->second == p.seq) {
      last_pending_.erase(it);
    }
    if (p.probe) {
      ++stats_.probes;
      continue;
    }
    std::string key = absl::StrCat(p.cpt, "/", p.service);
    auto cohort = cohorts_.find(key);
    if (cohort == cohorts_.end()) {
      if (cohorts_.size() >= options_.max_tracked) {
        // Make room: drop cohorts not counted for `buckets` buckets.
        int64_t oldest = BucketOf(now) - options_.buckets;
        absl::erase_if(cohorts_, [&](const auto& c) { return c.second.bucket < oldest; });
        if (cohorts_.size() >= options_.max_tracked) {
          ++stats_.dropped;
          continue;
        }
      }
      cohort = cohorts_.emplace(key, Cohort{}).first;
      cohort->second.counts.assign(static_cast<size_t>(options_.buckets), 0);
    }
    Cohort& c = cohort->second;
    int64_t b = BucketOf(p.at);
    if (b > c.bucket) {  // shift the window to end at bucket b
      int64_t shift =
          c.bucket < 0 ? options_.buckets : std::min<int64_t>(b - c.bucket, options_.buckets);
      c.counts.erase(c.counts.begin(), c.counts.begin() + shift);
      c.counts.resize(static_cast<size_t>(options_.buckets), 0);
      c.bucket = b;
    }
    int64_t index = static_cast<int64_t>(c.counts.size()) - 1 - (c.bucket - b);
    if (index < 0) continue;  // older than the window
    ++c.counts[static_cast<size_t>(index)];
    ++stats_.counted;
    bool sustained = std::all_of(c.counts.begin(), c.counts.end(),
                                 [&](int64_t n) { return n >= options_.min_requests; });
    if (sustained) {
      ++stats_.due;
      due.push_back(Due{.cpt = p.cpt,
                        .service = p.service,
                        .attributes = std::move(p.attributes),
                        .source = std::move(p.source)});
      cohorts_.erase(cohort);  // registered now, or counted afresh if refused
    }
  }
}

void CohortDemand::Forget(const std::string& cpt, const std::string& service) {
  absl::MutexLock lock(&mu_);
  cohorts_.erase(absl::StrCat(cpt, "/", service));
}

CohortDemand::Stats CohortDemand::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

size_t CohortDemand::tracked() const {
  absl::MutexLock lock(&mu_);
  return cohorts_.size() + pending_.size();
}

}  // namespace ppe::resolver
