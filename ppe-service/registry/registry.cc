#include "ppe-service/registry/registry.h"

#include <openssl/rand.h>

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/cpt/attributes_proto.h"
#include "ppe/registry/v1/records.pb.h"

namespace ppe::registry {
namespace {

constexpr const char* kInstanceKey = "/ppe/meta/instance";
constexpr const char* kProfilePrefix = "/ppe/profiles/";
constexpr const char* kVmPrefix = "/ppe/vms/";
constexpr const char* kLeasePrefix = "/ppe/leases/";

std::string ProfileKey(const std::string& cpt) { return absl::StrCat(kProfilePrefix, cpt); }
std::string VmKey(const std::string& name) { return absl::StrCat(kVmPrefix, name); }
std::string LeaseKey(const VmRecord& vm) {
  return absl::StrCat(kLeasePrefix, vm.service, "/", vm.ip);
}

int64_t Ms(absl::Time t) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return 0;
  return absl::ToUnixMillis(t);
}

ppe::registry::v1::Profile ToProto(const ProfileRecord& p) {
  ppe::registry::v1::Profile out;
  out.set_cpt(p.cpt);
  cpt::AttributesToProto(p.attributes, out.mutable_attributes());
  out.set_origin(p.origin);
  out.set_created_unix_ms(Ms(p.created));
  out.set_last_seen_unix_ms(Ms(p.last_seen));
  out.set_invalidated(p.invalidated);
  out.set_invalidated_unix_ms(Ms(p.invalidated_at));
  out.set_replaced_by(p.replaced_by);
  return out;
}

ProfileRecord FromProto(const ppe::registry::v1::Profile& p) {
  ProfileRecord out;
  out.cpt = p.cpt();
  out.attributes = cpt::AttributesFromProto(p.attributes());
  out.origin = p.origin();
  out.created = absl::FromUnixMillis(p.created_unix_ms());
  out.last_seen = absl::FromUnixMillis(p.last_seen_unix_ms());
  out.invalidated = p.invalidated();
  if (p.invalidated()) out.invalidated_at = absl::FromUnixMillis(p.invalidated_unix_ms());
  out.replaced_by = p.replaced_by();
  return out;
}

ppe::registry::v1::Vm ToProto(const VmRecord& v) {
  ppe::registry::v1::Vm out;
  out.set_name(v.name);
  out.set_cpt(v.cpt);
  out.set_service(v.service);
  out.set_workload_class(v.workload_class);
  out.set_ip(v.ip);
  out.set_mac(v.mac);
  out.set_state(std::string(VmStateName(v.state)));
  out.set_created_unix_ms(Ms(v.created));
  out.set_release_after_unix_ms(Ms(v.release_after));
  out.set_replaces(v.replaces);
  return out;
}

VmRecord FromProto(const ppe::registry::v1::Vm& v) {
  VmRecord out{.name = v.name(),
               .cpt = v.cpt(),
               .service = v.service(),
               .workload_class = v.workload_class(),
               .ip = v.ip(),
               .mac = v.mac(),
               .state = ParseVmState(v.state()).value_or(VmState::kFailed),
               .created = absl::FromUnixMillis(v.created_unix_ms()),
               .replaces = v.replaces()};
  if (v.release_after_unix_ms() != 0)
    out.release_after = absl::FromUnixMillis(v.release_after_unix_ms());
  return out;
}

std::string Serialize(const google::protobuf::Message& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

absl::Status TxnOk(const absl::StatusOr<store::TxnResult>& r, const std::string& what) {
  if (!r.ok()) return r.status();
  if (!r->succeeded) return absl::AlreadyExistsError(what);
  return absl::OkStatus();
}

}  // namespace

absl::string_view VmStateName(VmState s) {
  switch (s) {
    case VmState::kProvisioning:
      return "provisioning";
    case VmState::kBooting:
      return "booting";
    case VmState::kReady:
      return "ready";
    case VmState::kDraining:
      return "draining";
    case VmState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<VmState> ParseVmState(absl::string_view name) {
  for (VmState s : {VmState::kProvisioning, VmState::kBooting, VmState::kReady, VmState::kDraining,
                    VmState::kFailed}) {
    if (VmStateName(s) == name) return s;
  }
  return std::nullopt;
}

namespace {
thread_local std::shared_ptr<const Registry::Fence> current_fence;
}  // namespace

Registry::FenceScope::FenceScope(std::shared_ptr<const Fence> fence)
    : previous_(std::exchange(current_fence, std::move(fence))) {}
Registry::FenceScope::~FenceScope() { current_fence = std::move(previous_); }
std::shared_ptr<const Registry::Fence> Registry::FenceScope::Current() { return current_fence; }
std::function<void()> Registry::FenceScope::Bind(std::function<void()> work) {
  if (current_fence == nullptr) return work;
  return [fence = current_fence, work = std::move(work)] {
    FenceScope scope(fence);
    work();
  };
}

Registry::Registry(store::RegistryStore& store) : store_(store) {}

Registry::~Registry() { StopFollowing(); }

absl::Status Registry::Load() {
  absl::MutexLock write(&write_mu_);
  PPE_ASSIGN_OR_RETURN(std::optional<store::KeyValue> meta, store_.Get(kInstanceKey));
  ppe::registry::v1::Instance instance;
  if (meta.has_value()) {
    if (!instance.ParseFromString(meta->value)) return absl::DataLossError("bad instance record");
  } else {
    unsigned char id[8];
    RAND_bytes(id, sizeof id);
    instance.set_id(
        absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(id), sizeof id)));
    instance.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
    // Two replicas starting at once on an empty store agree on the first id.
    PPE_ASSIGN_OR_RETURN(
        store::TxnResult r,
        store_.Txn({.compares = {store::Compare::Absent(kInstanceKey)},
                    .success = {store::Op::Put(kInstanceKey, Serialize(instance))}}));
    if (!r.succeeded) {
      PPE_ASSIGN_OR_RETURN(std::optional<store::KeyValue> again, store_.Get(kInstanceKey));
      if (!again.has_value() || !instance.ParseFromString(again->value))
        return absl::DataLossError("bad instance record");
    }
  }
  instance_id_ = instance.id();
  return LoadLocked();
}

absl::Status Registry::LoadLocked() {
  absl::node_hash_map<std::string, ProfileRecord> profiles;
  absl::flat_hash_map<std::string, VmRecord> vms;
  absl::flat_hash_map<std::string, int64_t> revisions;
  absl::flat_hash_map<std::string, absl::Time> flushed;
  // Page by page: the listed records never sit in memory all at once.
  absl::StatusOr<int64_t> revision =
      store_.ListPages("/ppe/", [&](std::vector<store::KeyValue>& page) -> absl::Status {
        ppe::registry::v1::Profile p;  // reused: parsing into it allocates less
        ppe::registry::v1::Vm v;
        for (const store::KeyValue& kv : page) {
          if (absl::StartsWith(kv.key, kProfilePrefix)) {
            if (!p.ParseFromString(kv.value))
              return absl::DataLossError(absl::StrCat("bad record ", kv.key));
            ProfileRecord rec = FromProto(p);
            flushed[rec.cpt] = rec.last_seen;
            revisions[kv.key] = kv.mod_revision;
            profiles.emplace(rec.cpt, std::move(rec));
          } else if (absl::StartsWith(kv.key, kVmPrefix)) {
            if (!v.ParseFromString(kv.value))
              return absl::DataLossError(absl::StrCat("bad record ", kv.key));
            VmRecord rec = FromProto(v);
            revisions[kv.key] = kv.mod_revision;
            vms.emplace(rec.name, std::move(rec));
          }
        }
        return absl::OkStatus();
      });
  if (!revision.ok()) return revision.status();
  std::vector<const VmRecord*> ordered;
  for (const auto& [_, vm] : vms) ordered.push_back(&vm);
  std::sort(ordered.begin(), ordered.end(),
            [](const VmRecord* a, const VmRecord* b) { return a->created < b->created; });
  for (const VmRecord* vm : ordered) {
    auto p = profiles.find(vm->cpt);
    if (p != profiles.end()) p->second.pools[vm->service].push_back(vm->name);
  }
  absl::MutexLock lock(&mu_);
  // Profiles seen in memory since the last flush keep their later last_seen.
  for (auto& [cpt, p] : profiles) {
    if (auto old = profiles_.find(cpt); old != profiles_.end())
      p.last_seen = std::max(p.last_seen, old->second.last_seen);
  }
  profiles_ = std::move(profiles);
  vms_ = std::move(vms);
  key_revision_ = std::move(revisions);
  flushed_seen_ = std::move(flushed);
  deleted_at_.clear();
  loaded_revision_ = *revision;
  watched_revision_ = std::max(watched_revision_, *revision);
  return absl::OkStatus();
}

absl::Status Registry::Follow() {
  int64_t from;
  {
    absl::MutexLock lock(&mu_);
    if (following_) return absl::FailedPreconditionError("already following");
    following_ = true;
    from = loaded_revision_ + 1;
  }
  PPE_ASSIGN_OR_RETURN(
      watch_, store_.Watch("/ppe/", from, [this](const store::WatchResponse& r) { OnWatch(r); }));
  // Re-reads everything when the watch ends (compaction, a store error).
  follower_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Registry* r) ABSL_NO_THREAD_SAFETY_ANALYSIS { return r->resync_ || r->stop_; },
            this));
        if (stop_) return;
        resync_ = false;
        ++resyncs_;
      }
      watch_.reset();
      absl::Status loaded;
      std::vector<std::string> cpts;
      {
        absl::MutexLock write(&write_mu_);
        loaded = LoadLocked();
      }
      int64_t from_revision;
      {
        absl::MutexLock lock(&mu_);
        from_revision = loaded_revision_ + 1;
        for (const auto& [cpt, _] : profiles_) cpts.push_back(cpt);
      }
      if (loaded.ok()) {
        absl::StatusOr<std::unique_ptr<store::WatchHandle>> again = store_.Watch(
            "/ppe/", from_revision, [this](const store::WatchResponse& r) { OnWatch(r); });
        if (again.ok()) {
          watch_ = std::move(*again);
        } else {
          loaded = again.status();
        }
      }
      if (!loaded.ok()) {
        spdlog::warn("registry: cannot follow the store ({}); retrying", loaded.message());
        absl::SleepFor(absl::Milliseconds(500));
        absl::MutexLock lock(&mu_);
        resync_ = true;
        continue;
      }
      spdlog::info("registry: re-read {} profiles from the store at revision {}", cpts.size(),
                   from_revision - 1);
      for (const std::string& cpt : cpts) Changed(cpt);
    }
  });
  return absl::OkStatus();
}

void Registry::StopFollowing() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (follower_.joinable()) follower_.join();
  watch_.reset();
}

void Registry::OnWatch(const store::WatchResponse& response) {
  std::vector<std::string> changed;
  {
    absl::MutexLock lock(&mu_);
    if (!response.status.ok()) {
      if (!stop_) {
        spdlog::warn("registry: the store watch ended ({}); re-reading", response.status.message());
        resync_ = true;
      }
      return;
    }
    ApplyLocked(response.events, changed);
    watched_revision_ = std::max(watched_revision_, response.revision);
    last_watch_event_ = absl::Now();
    // Deletes the watch has passed can no longer be undone by a late event.
    for (auto it = deleted_at_.begin(); it != deleted_at_.end();) {
      if (it->second <= watched_revision_) {
        key_revision_.erase(it->first);
        deleted_at_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (const std::string& cpt : changed) Changed(cpt);
}

int64_t Registry::watched_revision() const {
  absl::MutexLock lock(&mu_);
  return watched_revision_;
}

bool Registry::WaitWatched(int64_t revision, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  if (!following_) return true;
  struct Arg {
    const Registry* r;
    int64_t revision;
  } arg{this, revision};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    return a->r->watched_revision_ >= a->revision;
                                  },
                                  &arg),
                              timeout);
}

absl::Time Registry::last_watch_event() const {
  absl::MutexLock lock(&mu_);
  return last_watch_event_;
}

int64_t Registry::resyncs() const {
  absl::MutexLock lock(&mu_);
  return resyncs_;
}

void Registry::ApplyLocked(const std::vector<store::WatchEvent>& events,
                           std::vector<std::string>& changed) {
  for (const store::WatchEvent& event : events) {
    const std::string& key = event.kv.key;
    const bool profile = absl::StartsWith(key, kProfilePrefix);
    const bool vm_key = absl::StartsWith(key, kVmPrefix);
    if (!profile && !vm_key) continue;
    const int64_t revision = event.kv.mod_revision;
    if (auto it = key_revision_.find(key); it != key_revision_.end() && it->second >= revision)
      continue;  // applied already (this process's own write) or older than what is known
    key_revision_[key] = revision;
    if (event.type == store::EventType::kDelete) {
      if (following_) {
        deleted_at_[key] = revision;
      } else {
        key_revision_.erase(key);
      }
    } else {
      deleted_at_.erase(key);
    }
    if (profile) {
      std::string cpt = key.substr(absl::string_view(kProfilePrefix).size());
      if (event.type == store::EventType::kDelete) {
        profiles_.erase(cpt);
        flushed_seen_.erase(cpt);
        changed.push_back(cpt);
        continue;
      }
      ppe::registry::v1::Profile proto;
      if (!proto.ParseFromString(event.kv.value)) {
        spdlog::warn("registry: bad profile record {} ignored", key);
        continue;
      }
      ProfileRecord rec = FromProto(proto);
      flushed_seen_[cpt] = rec.last_seen;
      auto it = profiles_.find(cpt);
      if (it == profiles_.end()) {
        profiles_.emplace(cpt, std::move(rec));
      } else {
        // Pools are derived from the VM records; last_seen may be newer here.
        rec.pools = std::move(it->second.pools);
        rec.last_seen = std::max(rec.last_seen, it->second.last_seen);
        it->second = std::move(rec);
      }
      changed.push_back(cpt);
      continue;
    }
    std::string name = key.substr(absl::string_view(kVmPrefix).size());
    auto old = vms_.find(name);
    auto leave_pool = [&](const VmRecord& vm) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      if (auto p = profiles_.find(vm.cpt); p != profiles_.end()) {
        auto pool = p->second.pools.find(vm.service);
        if (pool != p->second.pools.end()) {
          auto& names = pool->second;
          names.erase(std::remove(names.begin(), names.end(), vm.name), names.end());
          if (names.empty()) p->second.pools.erase(pool);
        }
      }
      changed.push_back(vm.cpt);
    };
    if (event.type == store::EventType::kDelete) {
      if (old != vms_.end()) {
        leave_pool(old->second);
        vms_.erase(old);
      }
      continue;
    }
    ppe::registry::v1::Vm proto;
    if (!proto.ParseFromString(event.kv.value)) {
      spdlog::warn("registry: bad VM record {} ignored", key);
      continue;
    }
    VmRecord rec = FromProto(proto);
    if (old != vms_.end() && (old->second.cpt != rec.cpt || old->second.service != rec.service)) {
      leave_pool(old->second);
    }
    if (auto p = profiles_.find(rec.cpt); p != profiles_.end()) {
      auto& names = p->second.pools[rec.service];
      if (std::find(names.begin(), names.end(), rec.name) == names.end()) names.push_back(rec.name);
    }
    changed.push_back(rec.cpt);
    vms_[name] = std::move(rec);
  }
}

absl::Status Registry::CheckFence() {
  const std::shared_ptr<const Fence> fence = current_fence;
  if (fence == nullptr) return absl::OkStatus();
  PPE_ASSIGN_OR_RETURN(store::Txn alone, (*fence)(store::Txn{}));
  PPE_ASSIGN_OR_RETURN(store::TxnResult r, store_.Txn(alone));
  if (r.succeeded) return absl::OkStatus();
  fenced_refusals_.fetch_add(1);
  return absl::PermissionDeniedError("fenced: this process no longer leads");
}

absl::StatusOr<store::TxnResult> Registry::Commit(store::Txn txn) {
  const bool own_compares = !txn.compares.empty();
  const std::shared_ptr<const Fence> fence = current_fence;
  if (fence != nullptr) {
    PPE_ASSIGN_OR_RETURN(store::Txn fenced, (*fence)(std::move(txn)));
    txn = std::move(fenced);
  }
  PPE_ASSIGN_OR_RETURN(store::TxnResult r, store_.Txn(txn));
  if (!r.succeeded) {
    if (fence == nullptr) return r;
    if (!own_compares) {
      fenced_refusals_.fetch_add(1);
      return absl::PermissionDeniedError("fenced: this process no longer leads");
    }
    // The txn's own compares failed, or the fence's: etcd does not say which,
    // so the fence alone is asked again (only after a failure).
    if (absl::Status fenced = CheckFence(); !fenced.ok()) return fenced;
    return r;
  }
  std::vector<store::WatchEvent> events;
  for (const store::Op& op : txn.success) {
    store::WatchEvent event;
    event.type =
        op.type == store::Op::Type::kPut ? store::EventType::kPut : store::EventType::kDelete;
    event.kv.key = op.key;
    event.kv.value = op.value;
    event.kv.mod_revision = r.revision;
    if (op.type != store::Op::Type::kDeletePrefix) events.push_back(std::move(event));
  }
  std::vector<std::string> changed;
  {
    absl::MutexLock lock(&mu_);
    ApplyLocked(events, changed);
  }
  std::sort(changed.begin(), changed.end());
  changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  for (const std::string& cpt : changed) Changed(cpt);
  return r;
}

bool Registry::IsActive(const std::string& cpt) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = profiles_.find(cpt);
  return it != profiles_.end() && !it->second.invalidated;
}

std::vector<std::string> Registry::ReadyAddresses(const std::string& cpt,
                                                  const std::string& service, absl::Time now) {
  std::vector<std::string> out;
  bool stale;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto profile = profiles_.find(cpt);
    if (profile == profiles_.end() || profile->second.invalidated) return out;
    stale = now - profile->second.last_seen > absl::Seconds(1);
    auto pool = profile->second.pools.find(service);
    if (pool != profile->second.pools.end()) {
      for (const std::string& name : pool->second) {
        auto vm = vms_.find(name);
        if (vm != vms_.end() && vm->second.state == VmState::kReady) out.push_back(vm->second.ip);
      }
    }
  }
  if (stale) {  // last_seen at 1 s resolution: the exclusive lock is rare
    absl::MutexLock lock(&mu_);
    if (auto profile = profiles_.find(cpt); profile != profiles_.end()) {
      profile->second.last_seen = std::max(profile->second.last_seen, now);
    }
  }
  return out;
}

std::optional<ProfileRecord> Registry::GetProfile(const std::string& cpt) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = profiles_.find(cpt);
  if (it == profiles_.end()) return std::nullopt;
  return it->second;
}

std::vector<ProfileRecord> Registry::ListProfiles() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<ProfileRecord> out;
  out.reserve(profiles_.size());
  for (const auto& [_, p] : profiles_) out.push_back(p);
  std::sort(out.begin(), out.end(), [](const ProfileRecord& a, const ProfileRecord& b) {
    return a.created != b.created ? a.created < b.created : a.cpt < b.cpt;
  });
  return out;
}

std::optional<VmRecord> Registry::GetVm(const std::string& name) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = vms_.find(name);
  if (it == vms_.end()) return std::nullopt;
  return it->second;
}

std::vector<VmRecord> Registry::ListVms(const std::string& cpt_filter) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<VmRecord> out;
  for (const auto& [_, vm] : vms_) {
    if (cpt_filter.empty() || vm.cpt == cpt_filter) out.push_back(vm);
  }
  std::sort(out.begin(), out.end(), [](const VmRecord& a, const VmRecord& b) {
    return a.created != b.created ? a.created < b.created : a.name < b.name;
  });
  return out;
}

size_t Registry::VmCount() const {
  absl::ReaderMutexLock lock(&mu_);
  return vms_.size();
}

size_t Registry::VmCount(const std::string& service) const {
  absl::ReaderMutexLock lock(&mu_);
  return std::count_if(vms_.begin(), vms_.end(),
                       [&](const auto& kv) { return kv.second.service == service; });
}

size_t Registry::PoolSize(const std::string& cpt, const std::string& service) const {
  absl::ReaderMutexLock lock(&mu_);
  auto p = profiles_.find(cpt);
  if (p == profiles_.end()) return 0;
  auto pool = p->second.pools.find(service);
  return pool == p->second.pools.end() ? 0 : pool->second.size();
}

std::vector<std::string> Registry::ServingAddresses(const std::string& cpt,
                                                    const std::string& service) const {
  std::vector<std::string> out;
  absl::ReaderMutexLock lock(&mu_);
  auto profile = profiles_.find(cpt);
  if (profile == profiles_.end() || profile->second.invalidated) return out;
  auto pool = profile->second.pools.find(service);
  if (pool == profile->second.pools.end()) return out;
  for (const std::string& name : pool->second) {
    auto vm = vms_.find(name);
    if (vm != vms_.end() && vm->second.state == VmState::kReady) out.push_back(vm->second.ip);
  }
  return out;
}

void Registry::NoteSeen(const std::string& cpt, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (auto profile = profiles_.find(cpt); profile != profiles_.end()) {
    profile->second.last_seen = std::max(profile->second.last_seen, now);
  }
}

absl::StatusOr<bool> Registry::RegisterProfile(const std::string& cpt,
                                               const cpt::Attributes& attributes,
                                               const std::string& origin, absl::Time now) {
  absl::MutexLock write(&write_mu_);
  {
    absl::MutexLock lock(&mu_);
    auto it = profiles_.find(cpt);
    if (it != profiles_.end()) {
      if (it->second.invalidated) {
        return absl::FailedPreconditionError("profile was invalidated");
      }
      it->second.last_seen = std::max(it->second.last_seen, now);
      return false;
    }
  }
  ProfileRecord p{
      .cpt = cpt, .attributes = attributes, .origin = origin, .created = now, .last_seen = now};
  PPE_ASSIGN_OR_RETURN(
      store::TxnResult r,
      Commit({.compares = {store::Compare::Absent(ProfileKey(cpt))},
              .success = {store::Op::Put(ProfileKey(cpt), Serialize(ToProto(p)))}}));
  if (r.succeeded) return true;
  // Another replica registered it first: take its record.
  PPE_ASSIGN_OR_RETURN(std::optional<store::KeyValue> kv, store_.Get(ProfileKey(cpt)));
  if (kv.has_value()) {
    std::vector<std::string> changed;
    {
      absl::MutexLock lock(&mu_);
      ApplyLocked({store::WatchEvent{.type = store::EventType::kPut, .kv = *kv}}, changed);
    }
    for (const std::string& c : changed) Changed(c);
  }
  absl::ReaderMutexLock lock(&mu_);
  auto it = profiles_.find(cpt);
  if (it != profiles_.end() && it->second.invalidated) {
    return absl::FailedPreconditionError("profile was invalidated");
  }
  return false;
}

absl::Status Registry::InvalidateProfile(const std::string& cpt, absl::Time now,
                                         absl::Time release_after, const std::string& replaced_by) {
  absl::MutexLock write(&write_mu_);
  ProfileRecord p;
  std::vector<VmRecord> vms;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = profiles_.find(cpt);
    if (it == profiles_.end()) return absl::NotFoundError("no such profile");
    if (it->second.invalidated) return absl::OkStatus();
    p = it->second;
    for (const auto& [_, names] : p.pools) {
      for (const auto& n : names) {
        if (auto vm = vms_.find(n); vm != vms_.end()) vms.push_back(vm->second);
      }
    }
  }
  p.invalidated = true;
  p.invalidated_at = now;
  p.replaced_by = replaced_by;
  store::Txn txn;
  txn.success.push_back(store::Op::Put(ProfileKey(cpt), Serialize(ToProto(p))));
  for (VmRecord& vm : vms) {
    vm.state = VmState::kDraining;
    vm.release_after = release_after;
    txn.success.push_back(store::Op::Put(VmKey(vm.name), Serialize(ToProto(vm))));
  }
  return TxnOk(Commit(std::move(txn)), "invalidate");
}

absl::Status Registry::RemoveProfile(const std::string& cpt) {
  absl::MutexLock write(&write_mu_);
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = profiles_.find(cpt);
    if (it == profiles_.end()) return absl::OkStatus();
    for (const auto& [_, names] : it->second.pools) {
      if (!names.empty()) return absl::FailedPreconditionError("profile still has VMs");
    }
  }
  absl::StatusOr<store::TxnResult> r = Commit({.success = {store::Op::Delete(ProfileKey(cpt))}});
  return TxnOk(r, "remove profile");
}

absl::Status Registry::AddVm(const VmRecord& vm) {
  absl::MutexLock write(&write_mu_);
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!vm.cpt.empty() && !profiles_.contains(vm.cpt)) {
      return absl::NotFoundError("no such profile");
    }
    if (vms_.contains(vm.name)) return absl::AlreadyExistsError(absl::StrCat("VM ", vm.name));
  }
  ppe::registry::v1::Lease lease;
  lease.set_vm_name(vm.name);
  store::Txn txn{
      .compares = {store::Compare::Absent(LeaseKey(vm)), store::Compare::Absent(VmKey(vm.name))},
      .success = {store::Op::Put(VmKey(vm.name), Serialize(ToProto(vm))),
                  store::Op::Put(LeaseKey(vm), Serialize(lease))}};
  if (!vm.cpt.empty()) txn.compares.push_back(store::Compare::Present(ProfileKey(vm.cpt)));
  return TxnOk(Commit(std::move(txn)),
               absl::StrCat("address ", vm.ip, " or VM ", vm.name, " taken"));
}

absl::StatusOr<std::optional<VmRecord>> Registry::ClaimSpare(const std::string& service,
                                                             const std::string& cpt) {
  absl::MutexLock write(&write_mu_);
  VmRecord vm;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!profiles_.contains(cpt)) return absl::NotFoundError("no such profile");
    const VmRecord* found = nullptr;
    for (const auto& [_, v] : vms_) {
      // The oldest; among equals the first by name, so that a run repeats.
      if (v.cpt.empty() && v.service == service && v.state == VmState::kReady &&
          (found == nullptr || v.created < found->created ||
           (v.created == found->created && v.name < found->name))) {
        found = &v;
      }
    }
    if (found == nullptr) return std::nullopt;
    vm = *found;
  }
  ppe::registry::v1::Vm spare = ToProto(vm);
  vm.cpt = cpt;
  // Claimed exactly once, also against another replica: the record must still be the spare.
  PPE_ASSIGN_OR_RETURN(
      store::TxnResult r,
      Commit({.compares = {store::Compare::ValueEquals(VmKey(vm.name), Serialize(spare)),
                           store::Compare::Present(ProfileKey(cpt))},
              .success = {store::Op::Put(VmKey(vm.name), Serialize(ToProto(vm)))}}));
  if (!r.succeeded) return std::nullopt;
  return vm;
}

std::vector<VmRecord> Registry::Spares(const std::string& service) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<VmRecord> out;
  for (const auto& [_, v] : vms_) {
    if (v.cpt.empty() && v.service == service) out.push_back(v);
  }
  return out;
}

absl::Status Registry::SetVmState(const std::string& name, VmState state,
                                  absl::Time release_after) {
  absl::MutexLock write(&write_mu_);
  VmRecord vm;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return absl::NotFoundError(absl::StrCat("VM ", name));
    vm = it->second;
  }
  vm.state = state;
  vm.release_after = release_after;
  return TxnOk(Commit({.success = {store::Op::Put(VmKey(name), Serialize(ToProto(vm)))}}),
               "set VM state");
}

absl::Status Registry::RemoveVm(const std::string& name) {
  absl::MutexLock write(&write_mu_);
  VmRecord vm;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = vms_.find(name);
    if (it == vms_.end()) return absl::OkStatus();
    vm = it->second;
  }
  return TxnOk(
      Commit({.success = {store::Op::Delete(VmKey(name)), store::Op::Delete(LeaseKey(vm))}}),
      "remove VM");
}

absl::StatusOr<int> Registry::FlushLastSeen() {
  absl::MutexLock write(&write_mu_);
  // Each profile is written only if unchanged since the index read it, so a
  // flush never undoes another replica's write (an invalidation).
  std::vector<std::pair<ProfileRecord, int64_t>> dirty;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [cpt, p] : profiles_) {
      auto f = flushed_seen_.find(cpt);
      if (f == flushed_seen_.end() || p.last_seen > f->second) {
        auto rev = key_revision_.find(ProfileKey(cpt));
        dirty.emplace_back(p, rev == key_revision_.end() ? 0 : rev->second);
      }
    }
  }
  if (dirty.empty()) return 0;
  auto txn_of = [](const ProfileRecord& p, int64_t revision, store::Txn& txn) {
    txn.compares.push_back(store::Compare::ModRevisionEquals(ProfileKey(p.cpt), revision));
    txn.success.push_back(store::Op::Put(ProfileKey(p.cpt), Serialize(ToProto(p))));
  };
  store::Txn all;
  for (const auto& [p, revision] : dirty) txn_of(p, revision, all);
  PPE_ASSIGN_OR_RETURN(store::TxnResult r, Commit(std::move(all)));
  int written = static_cast<int>(dirty.size());
  if (!r.succeeded) {  // one of them changed meanwhile: each on its own
    written = 0;
    for (const auto& [p, revision] : dirty) {
      store::Txn one;
      txn_of(p, revision, one);
      PPE_ASSIGN_OR_RETURN(store::TxnResult each, Commit(std::move(one)));
      written += each.succeeded;
    }
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [p, _] : dirty) {
    auto f = flushed_seen_.find(p.cpt);
    if (f != flushed_seen_.end()) f->second = std::max(f->second, p.last_seen);
  }
  return written;
}

}  // namespace ppe::registry
