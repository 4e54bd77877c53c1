#include "ppe-service/registry/registry.h"

#include <openssl/rand.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  auto* a = out.mutable_attributes();
  a->set_region(p.attributes.region);
  a->set_device_class(p.attributes.device_class);
  a->set_service_tier(p.attributes.service_tier);
  a->set_time_bucket(p.attributes.time_bucket);
  a->set_request_pattern(p.attributes.request_pattern);
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
  out.attributes = {.region = p.attributes().region(),
                    .device_class = p.attributes().device_class(),
                    .service_tier = p.attributes().service_tier(),
                    .time_bucket = p.attributes().time_bucket(),
                    .request_pattern = p.attributes().request_pattern()};
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
               .created = absl::FromUnixMillis(v.created_unix_ms())};
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

Registry::Registry(store::RegistryStore& store) : store_(store) {}

absl::Status Registry::Load() {
  absl::MutexLock write(&write_mu_);
  absl::StatusOr<std::optional<store::KeyValue>> meta = store_.Get(kInstanceKey);
  if (!meta.ok()) return meta.status();
  ppe::registry::v1::Instance instance;
  if (meta->has_value()) {
    if (!instance.ParseFromString((*meta)->value))
      return absl::DataLossError("bad instance record");
  } else {
    unsigned char id[8];
    RAND_bytes(id, sizeof id);
    instance.set_id(
        absl::BytesToHexString(absl::string_view(reinterpret_cast<char*>(id), sizeof id)));
    instance.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
    // Two replicas starting at once on an empty store agree on the first id.
    absl::StatusOr<store::TxnResult> r =
        store_.Txn({.compares = {store::Compare::Absent(kInstanceKey)},
                    .success = {store::Op::Put(kInstanceKey, Serialize(instance))}});
    if (!r.ok()) return r.status();
    if (!r->succeeded) return Load();
  }
  instance_id_ = instance.id();

  absl::StatusOr<store::RangeResult> all = store_.List("/ppe/");
  if (!all.ok()) return all.status();
  absl::flat_hash_map<std::string, ProfileRecord> profiles;
  absl::flat_hash_map<std::string, VmRecord> vms;
  for (const store::KeyValue& kv : all->kvs) {
    if (absl::StartsWith(kv.key, kProfilePrefix)) {
      ppe::registry::v1::Profile p;
      if (!p.ParseFromString(kv.value))
        return absl::DataLossError(absl::StrCat("bad record ", kv.key));
      ProfileRecord rec = FromProto(p);
      flushed_seen_[rec.cpt] = rec.last_seen;
      profiles.emplace(rec.cpt, std::move(rec));
    } else if (absl::StartsWith(kv.key, kVmPrefix)) {
      ppe::registry::v1::Vm v;
      if (!v.ParseFromString(kv.value))
        return absl::DataLossError(absl::StrCat("bad record ", kv.key));
      VmRecord rec = FromProto(v);
      vms.emplace(rec.name, std::move(rec));
    }
  }
  std::vector<const VmRecord*> ordered;
  for (const auto& [_, vm] : vms) ordered.push_back(&vm);
  std::sort(ordered.begin(), ordered.end(),
            [](const VmRecord* a, const VmRecord* b) { return a->created < b->created; });
  for (const VmRecord* vm : ordered) {
    auto p = profiles.find(vm->cpt);
    if (p != profiles.end()) p->second.pools[vm->service].push_back(vm->name);
  }
  absl::MutexLock lock(&mu_);
  profiles_ = std::move(profiles);
  vms_ = std::move(vms);
  return absl::OkStatus();
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

absl::Status Registry::PutProfile(const ProfileRecord& p) {
  absl::StatusOr<int64_t> r = store_.Put(ProfileKey(p.cpt), Serialize(ToProto(p)));
  return r.ok() ? absl::OkStatus() : r.status();
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
  absl::StatusOr<store::TxnResult> r =
      store_.Txn({.compares = {store::Compare::Absent(ProfileKey(cpt))},
                  .success = {store::Op::Put(ProfileKey(cpt), Serialize(ToProto(p)))}});
  if (!r.ok()) return r.status();
  bool created = r->succeeded;
  if (!created) {  // another replica registered it first: take its record
    absl::StatusOr<std::optional<store::KeyValue>> kv = store_.Get(ProfileKey(cpt));
    if (!kv.ok()) return kv.status();
    ppe::registry::v1::Profile stored;
    if (kv->has_value() && stored.ParseFromString((*kv)->value)) p = FromProto(stored);
  }
  flushed_seen_[cpt] = p.last_seen;
  absl::MutexLock lock(&mu_);
  profiles_.emplace(cpt, std::move(p));
  return created;
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
  if (absl::Status s = TxnOk(store_.Txn(txn), "invalidate"); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    profiles_[cpt].invalidated = true;
    profiles_[cpt].invalidated_at = now;
    profiles_[cpt].replaced_by = replaced_by;
    for (VmRecord& vm : vms) vms_[vm.name] = std::move(vm);
  }
  Changed(cpt);
  return absl::OkStatus();
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
  absl::StatusOr<bool> deleted = store_.Delete(ProfileKey(cpt));
  if (!deleted.ok()) return deleted.status();
  flushed_seen_.erase(cpt);
  {
    absl::MutexLock lock(&mu_);
    profiles_.erase(cpt);
  }
  Changed(cpt);
  return absl::OkStatus();
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
  absl::StatusOr<store::TxnResult> r = store_.Txn(txn);
  if (absl::Status s = TxnOk(r, absl::StrCat("address ", vm.ip, " or VM ", vm.name, " taken"));
      !s.ok()) {
    return s;
  }
  {
    absl::MutexLock lock(&mu_);
    if (!vm.cpt.empty()) profiles_[vm.cpt].pools[vm.service].push_back(vm.name);
    vms_.emplace(vm.name, vm);
  }
  Changed(vm.cpt);
  return absl::OkStatus();
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
  absl::StatusOr<store::TxnResult> r =
      store_.Txn({.compares = {store::Compare::ValueEquals(VmKey(vm.name), Serialize(spare)),
                               store::Compare::Present(ProfileKey(cpt))},
                  .success = {store::Op::Put(VmKey(vm.name), Serialize(ToProto(vm)))}});
  if (!r.ok()) return r.status();
  if (!r->succeeded) return std::nullopt;
  {
    absl::MutexLock lock(&mu_);
    vms_[vm.name] = vm;
    profiles_[cpt].pools[service].push_back(vm.name);
  }
  Changed(cpt);
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
  absl::StatusOr<int64_t> r = store_.Put(VmKey(name), Serialize(ToProto(vm)));
  if (!r.ok()) return r.status();
  {
    absl::MutexLock lock(&mu_);
    vms_[name] = vm;
  }
  Changed(vm.cpt);
  return absl::OkStatus();
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
  absl::StatusOr<store::TxnResult> r =
      store_.Txn({.success = {store::Op::Delete(VmKey(name)), store::Op::Delete(LeaseKey(vm))}});
  if (!r.ok()) return r.status();
  {
    absl::MutexLock lock(&mu_);
    vms_.erase(name);
    if (auto p = profiles_.find(vm.cpt); p != profiles_.end()) {
      auto& pool = p->second.pools[vm.service];
      pool.erase(std::remove(pool.begin(), pool.end(), name), pool.end());
      if (pool.empty()) p->second.pools.erase(vm.service);
    }
  }
  Changed(vm.cpt);
  return absl::OkStatus();
}

absl::StatusOr<int> Registry::FlushLastSeen() {
  absl::MutexLock write(&write_mu_);
  std::vector<ProfileRecord> dirty;
  {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [cpt, p] : profiles_) {
      auto f = flushed_seen_.find(cpt);
      if (f == flushed_seen_.end() || p.last_seen > f->second) dirty.push_back(p);
    }
  }
  if (dirty.empty()) return 0;
  store::Txn txn;
  for (const ProfileRecord& p : dirty) {
    txn.success.push_back(store::Op::Put(ProfileKey(p.cpt), Serialize(ToProto(p))));
  }
  if (absl::Status s = TxnOk(store_.Txn(txn), "flush"); !s.ok()) return s;
  for (const ProfileRecord& p : dirty) flushed_seen_[p.cpt] = p.last_seen;
  return static_cast<int>(dirty.size());
}

}  // namespace ppe::registry
