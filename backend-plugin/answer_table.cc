#include "backend-plugin/answer_table.h"

#include <arpa/inet.h>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "ppe-service/dns/cohort_client.h"

namespace ppe::plugin {
namespace {

std::atomic<uint64_t> next_table_id{1};

// Keys: "service|cpt" and "service|client|bucket", built on the stack for look-ups.
class Key {
 public:
  Key(absl::string_view a, absl::string_view b) { Add(a), Add("|"), Add(b); }
  Key(absl::string_view a, absl::string_view b, uint32_t bucket) {
    Add(a), Add("|"), Add(b), Add("|");
    char digits[12];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + bucket % 10);
      bucket /= 10;
    } while (bucket != 0);
    while (n > 0) Add(absl::string_view(&digits[--n], 1));
  }
  absl::string_view view() const { return ok_ ? absl::string_view(buf_, size_) : ""; }
  bool ok() const { return ok_; }

 private:
  void Add(absl::string_view s) {
    if (size_ + s.size() > sizeof(buf_)) {
      ok_ = false;
      return;
    }
    for (char c : s) buf_[size_++] = c;
  }
  char buf_[256];
  size_t size_ = 0;
  bool ok_ = true;
};

bool ParseV4(const std::string& address, uint32_t& out) {
  in_addr a;
  if (inet_pton(AF_INET, address.c_str(), &a) != 1) return false;
  out = a.s_addr;
  return true;
}

// Each thread's current table, per AnswerTable (a thread normally sees one).
struct ThreadView {
  uint64_t owner = 0;
  uint64_t generation = 0;
  std::shared_ptr<const void> table;
};
thread_local ThreadView thread_view;

}  // namespace

AnswerTable::AnswerTable(Options options)
    : options_(options), id_(next_table_id.fetch_add(1)), current_(std::make_shared<Table>()) {}

AnswerTable::~AnswerTable() = default;

const AnswerTable::Table* AnswerTable::Current() const {
  uint64_t generation = generation_.load(std::memory_order_acquire);
  if (thread_view.owner != id_ || thread_view.generation != generation) {
    absl::MutexLock lock(&swap_mu_);
    thread_view.owner = id_;
    thread_view.generation = generation_.load(std::memory_order_acquire);
    thread_view.table = current_;
  }
  return static_cast<const Table*>(thread_view.table.get());
}

AnswerTable::Shard& AnswerTable::ShardOf(Table& t, absl::string_view key) {
  return t.shards[absl::HashOf(key) % kShards];
}

AnswerTable::Mode AnswerTable::mode(absl::Time now) const {
  if (!has_snapshot_.load(std::memory_order_relaxed)) return Mode::kOff;
  if (connected_.load(std::memory_order_relaxed)) return Mode::kFresh;
  int64_t lost = lost_at_ns_.load(std::memory_order_relaxed);
  if (absl::FromUnixNanos(lost) + options_.stale_serve > now) return Mode::kStale;
  return Mode::kOff;
}

bool AnswerTable::FindProfile(absl::string_view service, absl::string_view cpt, Answer& out) const {
  Key key(service, cpt);
  if (!key.ok()) return false;
  Table& t = const_cast<Table&>(*Current());
  Shard& shard = ShardOf(t, key.view());
  absl::ReaderMutexLock lock(&shard.mu);
  auto it = shard.profiles.find(key.view());
  if (it == shard.profiles.end()) return false;
  out.v4.assign(it->second.v4.begin(), it->second.v4.end());
  out.ttl = it->second.ttl;
  out.scope = 0;
  out.cpt.assign(cpt.data(), cpt.size());
  return true;
}

bool AnswerTable::FindCohort(absl::string_view service, absl::string_view client, absl::Time now,
                             Answer& out) const {
  const Table& t = *Current();
  absl::CivilMinute minute = absl::ToCivilMinute(now, absl::UTCTimeZone());
  uint32_t bucket = dns::TimeBucketIndex(minute.hour() * 60 + minute.minute(), t.buckets_per_day);
  Key key(service, client, bucket);
  if (!key.ok()) return false;
  std::string cpt;
  uint32_t scope;
  {
    Shard& shard = ShardOf(const_cast<Table&>(t), key.view());
    absl::ReaderMutexLock lock(&shard.mu);
    auto it = shard.cohorts.find(key.view());
    if (it == shard.cohorts.end()) return false;
    cpt = it->second.cpt;
    scope = it->second.scope;
  }
  if (!FindProfile(service, cpt, out)) return false;
  out.scope = scope;
  return true;
}

void AnswerTable::Upsert(Table& t, const ppe::v1::ProfileAnswer& p) {
  ProfileValue v;
  for (const std::string& a : p.addresses()) {
    uint32_t ip;
    // VM addresses are IPv4; a profile with another kind is left to Resolve.
    if (!ParseV4(a, ip)) return Remove(t, p);
    v.v4.push_back(ip);
  }
  v.ttl = p.ttl();
  std::string key = absl::StrCat(p.service(), "|", p.cpt());
  Shard& shard = ShardOf(t, key);
  absl::MutexLock lock(&shard.mu);
  shard.profiles.insert_or_assign(std::move(key), std::move(v));
}

void AnswerTable::Upsert(Table& t, const ppe::v1::CohortAnswer& c) {
  std::string key = absl::StrCat(c.service(), "|", c.client(), "|", c.time_bucket());
  Shard& shard = ShardOf(t, key);
  absl::MutexLock lock(&shard.mu);
  shard.cohorts.insert_or_assign(std::move(key), CohortValue{c.cpt(), c.scope()});
}

void AnswerTable::Remove(Table& t, const ppe::v1::ProfileAnswer& p) {
  std::string key = absl::StrCat(p.service(), "|", p.cpt());
  Shard& shard = ShardOf(t, key);
  absl::MutexLock lock(&shard.mu);
  shard.profiles.erase(key);
}

void AnswerTable::Remove(Table& t, const ppe::v1::CohortAnswer& c) {
  std::string key = absl::StrCat(c.service(), "|", c.client(), "|", c.time_bucket());
  Shard& shard = ShardOf(t, key);
  absl::MutexLock lock(&shard.mu);
  shard.cohorts.erase(key);
}

absl::Status AnswerTable::Apply(const ppe::v1::AnswerUpdate& u) {
  if (u.reset()) pending_ = std::make_unique<Table>();
  Table* target;
  if (pending_ != nullptr) {
    target = pending_.get();
  } else {
    if (u.epoch() != epoch_.load() ||
        (u.version() != version_.load() + 1 && u.version() != version_.load())) {
      return absl::FailedPreconditionError(absl::StrCat("answer update ", u.epoch(), "/",
                                                        u.version(), " does not follow ",
                                                        epoch_.load(), "/", version_.load()));
    }
    absl::MutexLock lock(&swap_mu_);
    target = current_.get();  // deltas change the served table in place
  }
  if (u.reset() && u.time_buckets_per_day() != 0)
    target->buckets_per_day = u.time_buckets_per_day();
  for (const auto& p : u.removed_profiles()) Remove(*target, p);
  for (const auto& c : u.removed_cohorts()) Remove(*target, c);
  for (const auto& p : u.profiles()) Upsert(*target, p);
  for (const auto& c : u.cohorts()) Upsert(*target, c);
  if (pending_ != nullptr && !u.partial()) {  // the snapshot is complete: serve it
    {
      absl::MutexLock lock(&swap_mu_);
      current_ = std::shared_ptr<Table>(std::move(pending_));
      generation_.fetch_add(1, std::memory_order_release);
    }
    has_snapshot_.store(true);
  }
  if (pending_ == nullptr) {
    epoch_.store(u.epoch());
    version_.store(u.version());
  }
  return absl::OkStatus();
}

void AnswerTable::SetConnected(bool connected, absl::Time now) {
  if (!connected) pending_.reset();
  if (!connected && connected_.load()) lost_at_ns_.store(absl::ToUnixNanos(now));
  connected_.store(connected);
}

void AnswerTable::ForgetVersion() {
  pending_.reset();
  epoch_.store(0);
  version_.store(0);
}

uint64_t AnswerTable::epoch() const { return epoch_.load(); }
uint64_t AnswerTable::version() const { return version_.load(); }

size_t AnswerTable::profile_count() const {
  size_t n = 0;
  for (const Shard& s : Current()->shards) {
    absl::ReaderMutexLock lock(&s.mu);
    n += s.profiles.size();
  }
  return n;
}

size_t AnswerTable::cohort_count() const {
  size_t n = 0;
  for (const Shard& s : Current()->shards) {
    absl::ReaderMutexLock lock(&s.mu);
    n += s.cohorts.size();
  }
  return n;
}

}  // namespace ppe::plugin
