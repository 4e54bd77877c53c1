#include "ppe-service/resolver/answer_stream.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "ppe-service/dns/cohort_client.h"

namespace ppe::resolver {

AnswerStream::AnswerStream(registry::Registry& registry, std::vector<std::string> services,
                           ppe::v1::ListZonesResponse zones, const Clock& clock, Options options)
    : registry_(registry),
      services_(std::move(services)),
      zones_(std::move(zones)),
      clock_(clock),
      options_(options) {
  if (options_.epoch == 0) {
    std::random_device rd;
    options_.epoch = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;
  }
}

std::string AnswerStream::ProfileKey(const std::string& service, const std::string& cpt) {
  return absl::StrCat(service, "|", cpt);
}

std::string AnswerStream::CohortKey(const std::string& service, const std::string& client,
                                    uint32_t bucket) {
  return absl::StrCat(service, "|", client, "|", bucket);
}

void AnswerStream::Start() {
  {
    absl::MutexLock lock(&mu_);
    ppe::v1::AnswerUpdate ignored;
    for (const registry::ProfileRecord& p : registry_.ListProfiles()) {
      RecomputeLocked(p.cpt, ignored);
    }
  }
  registry_.SetChangeListener([this](const std::string& cpt) { OnProfileChanged(cpt); });
}

uint32_t AnswerStream::CurrentBucket() const {
  absl::CivilMinute now = absl::ToCivilMinute(clock_.Now(), absl::UTCTimeZone());
  return dns::TimeBucketIndex(now.hour() * 60 + now.minute(), options_.time_buckets_per_day);
}

bool AnswerStream::RecomputeLocked(const std::string& cpt, ppe::v1::AnswerUpdate& delta) {
  bool changed = false;
  bool any_ready = false;
  for (const std::string& service : services_) {
    std::vector<std::string> ready = registry_.ServingAddresses(cpt, service);
    std::string key = ProfileKey(service, cpt);
    auto it = profiles_.find(key);
    if (ready.empty()) {
      if (it == profiles_.end()) continue;
      profiles_.erase(it);
      ppe::v1::ProfileAnswer* removed = delta.add_removed_profiles();
      removed->set_service(service);
      removed->set_cpt(cpt);
      changed = true;
      continue;
    }
    any_ready = true;
    if (it != profiles_.end() &&
        std::equal(ready.begin(), ready.end(), it->second.addresses().begin(),
                   it->second.addresses().end())) {
      continue;
    }
    ppe::v1::ProfileAnswer entry;
    entry.set_service(service);
    entry.set_cpt(cpt);
    for (std::string& a : ready) entry.add_addresses(std::move(a));
    entry.set_ttl(options_.ttl);
    *delta.add_profiles() = entry;
    profiles_[key] = std::move(entry);
    changed = true;
  }
  // A profile that no longer answers takes its cohorts with it.
  if (!any_ready) {
    auto of = cohorts_of_.find(cpt);
    if (of != cohorts_of_.end()) {
      for (const std::string& key : of->second) {
        auto c = cohorts_.find(key);
        if (c == cohorts_.end()) continue;
        ppe::v1::CohortAnswer* removed = delta.add_removed_cohorts();
        removed->set_service(c->second.service());
        removed->set_client(c->second.client());
        removed->set_time_bucket(c->second.time_bucket());
        cohorts_.erase(c);
        changed = true;
      }
      cohorts_of_.erase(of);
    }
  }
  return changed;
}

void AnswerStream::OnProfileChanged(const std::string& cpt) {
  ppe::v1::AnswerUpdate delta;
  {
    absl::MutexLock lock(&mu_);
    if (!RecomputeLocked(cpt, delta)) return;
    Publish(std::move(delta));
  }
  Wake();
}

void AnswerStream::OnCohortAnswer(const std::string& service, const std::string& client,
                                  uint32_t bucket, const std::string& cpt, uint32_t scope) {
  std::string key = CohortKey(service, client, bucket);
  bool expire;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = cohorts_.find(key);
    if (it != cohorts_.end() && it->second.cpt() == cpt && it->second.scope() == scope) return;
    // Only profiles that answer from the table: others are Resolve's anyway.
    if (!profiles_.contains(ProfileKey(service, cpt))) return;
    if (it == cohorts_.end() && cohorts_.size() >= options_.max_cohorts) return;
    expire = bucket != cohort_bucket_;
  }
  if (expire) ExpireCohorts(bucket);
  ppe::v1::AnswerUpdate delta;
  {
    absl::MutexLock lock(&mu_);
    if (!profiles_.contains(ProfileKey(service, cpt))) return;  // removed meanwhile
    if (bucket != cohort_bucket_) return;                       // a bucket ended meanwhile
    ppe::v1::CohortAnswer entry;
    entry.set_service(service);
    entry.set_client(client);
    entry.set_time_bucket(bucket);
    entry.set_cpt(cpt);
    entry.set_scope(scope);
    auto it = cohorts_.find(key);
    if (it != cohorts_.end()) {
      if (it->second.cpt() == cpt && it->second.scope() == scope) return;
      cohorts_of_[it->second.cpt()].erase(key);
    }
    *delta.add_cohorts() = entry;
    cohorts_[key] = std::move(entry);
    cohorts_of_[cpt].insert(key);
    Publish(std::move(delta));
  }
  Wake();
}

void AnswerStream::ExpireCohorts(uint32_t bucket) {
  ppe::v1::AnswerUpdate delta;
  {
    absl::MutexLock lock(&mu_);
    cohort_bucket_ = bucket;
    for (auto it = cohorts_.begin(); it != cohorts_.end();) {
      const ppe::v1::CohortAnswer& c = it->second;
      if (c.time_bucket() == bucket) {
        ++it;
        continue;
      }
      if (auto of = cohorts_of_.find(c.cpt()); of != cohorts_of_.end()) {
        of->second.erase(it->first);
        if (of->second.empty()) cohorts_of_.erase(of);
      }
      ppe::v1::CohortAnswer* removed = delta.add_removed_cohorts();
      removed->set_service(c.service());
      removed->set_client(c.client());
      removed->set_time_bucket(c.time_bucket());
      cohorts_.erase(it++);
    }
    if (delta.removed_cohorts_size() == 0) return;
    Publish(std::move(delta));
  }
  Wake();
}

void AnswerStream::Publish(ppe::v1::AnswerUpdate delta) {
  delta.set_epoch(options_.epoch);
  delta.set_version(++version_);
  log_.push_back(std::make_shared<const ppe::v1::AnswerUpdate>(std::move(delta)));
  while (log_.size() > options_.log_capacity) log_.pop_front();
}

void AnswerStream::Wake() {
  absl::MutexLock lock(&subs_mu_);
  for (auto& [_, wake] : subs_) wake();
}

std::vector<AnswerStream::Update> AnswerStream::Since(uint64_t epoch, uint64_t version,
                                                      bool hello) const {
  std::vector<Update> out;
  absl::ReaderMutexLock lock(&mu_);
  if (epoch == options_.epoch && version <= version_) {
    uint64_t oldest = log_.empty() ? version_ + 1 : log_.front()->version();
    if (version + 1 >= oldest) {  // the log holds every version after the client's
      for (auto it = log_.begin() + static_cast<ptrdiff_t>(version + 1 - oldest);
           version < version_ && it != log_.end(); ++it) {
        out.push_back(*it);
      }
      if (out.empty() && hello) {
        auto empty = std::make_shared<ppe::v1::AnswerUpdate>();
        empty->set_epoch(options_.epoch);
        empty->set_version(version_);
        out.push_back(std::move(empty));
      }
      return out;
    }
  }
  // A snapshot: every entry, in chunks, all at the current version.
  const uint64_t current = version_;
  auto chunk = std::make_shared<ppe::v1::AnswerUpdate>();
  chunk->set_reset(true);
  *chunk->mutable_zones() = zones_;
  chunk->set_time_buckets_per_day(options_.time_buckets_per_day);
  size_t in_chunk = 0;
  auto flush = [&] {
    chunk->set_epoch(options_.epoch);
    chunk->set_version(current);
    chunk->set_partial(true);
    out.push_back(std::move(chunk));
    chunk = std::make_shared<ppe::v1::AnswerUpdate>();
    in_chunk = 0;
  };
  for (const auto& [_, p] : profiles_) {
    *chunk->add_profiles() = p;
    if (++in_chunk == options_.snapshot_chunk) flush();
  }
  for (const auto& [_, c] : cohorts_) {
    *chunk->add_cohorts() = c;
    if (++in_chunk == options_.snapshot_chunk) flush();
  }
  flush();
  std::const_pointer_cast<ppe::v1::AnswerUpdate>(out.back())->set_partial(false);
  return out;
}

uint64_t AnswerStream::Subscribe(std::function<void()> wake) {
  absl::MutexLock lock(&subs_mu_);
  uint64_t id = next_sub_++;
  subs_.emplace(id, std::move(wake));
  return id;
}

void AnswerStream::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&subs_mu_);
  subs_.erase(id);
}

uint64_t AnswerStream::version() const {
  absl::ReaderMutexLock lock(&mu_);
  return version_;
}

size_t AnswerStream::profile_entries() const {
  absl::ReaderMutexLock lock(&mu_);
  return profiles_.size();
}

size_t AnswerStream::cohort_entries() const {
  absl::ReaderMutexLock lock(&mu_);
  return cohorts_.size();
}

}  // namespace ppe::resolver
