#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/cpt/attributes.h"
#include "ppe-service/store/registry_store.h"

namespace ppe::registry {

// provisioning -> booting -> ready -> draining -> (released: removed).
enum class VmState { kProvisioning, kBooting, kReady, kDraining, kFailed };
absl::string_view VmStateName(VmState s);
std::optional<VmState> ParseVmState(absl::string_view name);

struct VmRecord {
  std::string name{};  // libvirt domain name
  std::string cpt{};   // empty for a warm spare (owned by no profile yet)
  std::string service{};
  std::string workload_class{};
  std::string ip{};
  std::string mac{};
  VmState state = VmState::kProvisioning;
  absl::Time created{};
  absl::Time release_after = absl::InfiniteFuture();  // draining VMs only
  std::string replaces{};  // a move off a lost host: the VM it re-creates
};

struct ProfileRecord {
  std::string cpt{};
  cpt::Attributes attributes{};
  std::string origin{};  // "admin" (IssueCpt) or "dns" (derived from a query)
  absl::Time created{};
  absl::Time last_seen{};
  bool invalidated = false;
  absl::Time invalidated_at = absl::InfinitePast();
  std::string replaced_by{};
  // service -> names of the VMs in the pool, in allocation order
  absl::flat_hash_map<std::string, std::vector<std::string>> pools{};
};

// The CPT -> profile -> VM pool registry. The durable copy lives in a
// RegistryStore (SQLite, memory or etcd); an in-memory index serves every
// read, so the lookup path is a shared-lock hash look-up and never touches the
// store. Mutations write the store first (durable when they return) and then
// apply their own changes to the index; they block on I/O, so call them off
// the lookup path. Mutations of one process are serialised; reads run
// concurrently with them.
//
// Replicas: with Follow(), the index is also fed by a store watch, so that the
// writes of other processes sharing the store (etcd) appear here. The index
// applies every change once, in revision order per key: each record remembers
// the revision it was last changed at, and a change at an older or equal
// revision (a process's own write coming back through the watch, or a late
// event) is skipped.
class Registry {
 public:
  explicit Registry(store::RegistryStore& store);

  // Reads everything from the store into the index (start-up). Creates the
  // instance id on first use.
  absl::Status Load();
  const std::string& instance_id() const { return instance_id_; }

  // Follows the store: a watch from the revision Load read at applies every
  // change (also other processes') to the index. On compaction it re-reads
  // everything and watches again. Call once, after Load.
  absl::Status Follow();
  // Stops the watch (also done by the destructor).
  void StopFollowing();
  ~Registry();

  // The store revision the index has applied through its watch (0 without Follow).
  int64_t watched_revision() const;
  // Waits until the watch has applied `revision` (true), or `timeout` passed.
  // True at once without Follow: the index then has every write of this process.
  bool WaitWatched(int64_t revision, absl::Duration timeout) const;
  // When the watch last applied a change; how often it re-read everything.
  absl::Time last_watch_event() const;
  int64_t resyncs() const;

  // --- reads (memory only) ---
  // True when the CPT names an active (not invalidated) profile.
  bool IsActive(const std::string& cpt) const;
  // Addresses of the ready VMs of (cpt, service); empty when none. Notes the
  // profile as seen (in memory; flushed by FlushLastSeen).
  std::vector<std::string> ReadyAddresses(const std::string& cpt, const std::string& service,
                                          absl::Time now);
  std::optional<ProfileRecord> GetProfile(const std::string& cpt) const;
  std::vector<ProfileRecord> ListProfiles() const;
  std::optional<VmRecord> GetVm(const std::string& name) const;
  std::vector<VmRecord> ListVms(const std::string& cpt_filter = "") const;
  size_t VmCount() const;
  size_t VmCount(const std::string& service) const;
  size_t PoolSize(const std::string& cpt, const std::string& service) const;
  // ReadyAddresses without noting the profile as seen (the answer stream's view).
  std::vector<std::string> ServingAddresses(const std::string& cpt,
                                            const std::string& service) const;
  // Notes the profile as seen at `now` (answers given elsewhere, e.g. by a plugin).
  void NoteSeen(const std::string& cpt, absl::Time now);

  // Called after every mutation that can change what a profile answers (its
  // VMs' states, its pool, invalidation, removal), with the profile's CPT, on
  // the mutating thread, mutations still serialised. Set once, before serving.
  using ChangeListener = std::function<void(const std::string& cpt)>;
  void SetChangeListener(ChangeListener listener) { listener_ = std::move(listener); }

  // --- mutations (store, then memory) ---
  // Store writes of the mutations below go through `fence` when set (a
  // leader's fence: it adds a compare so that etcd refuses the write once this
  // process no longer leads). Set for the current thread by FenceScope; work a
  // fenced thread hands to another (the worker pool) takes Current() along and
  // opens its own scope with it.
  using Fence = std::function<absl::StatusOr<store::Txn>(store::Txn)>;
  class FenceScope {
   public:
    explicit FenceScope(std::shared_ptr<const Fence> fence);
    ~FenceScope();
    FenceScope(const FenceScope&) = delete;
    FenceScope& operator=(const FenceScope&) = delete;
    // The fence of the current thread; null outside every scope.
    static std::shared_ptr<const Fence> Current();
    // `work` wrapped to run inside the current thread's fence (if any), for
    // handing to another thread.
    static std::function<void()> Bind(std::function<void()> work);

   private:
    std::shared_ptr<const Fence> previous_;
  };
  // Inside a FenceScope: OK while the fence holds (one store round trip),
  // PERMISSION_DENIED (counted below) once it does not. OK outside every
  // scope. For actions outside the store (destroying a domain) that must be
  // the leader's alone.
  absl::Status CheckFence();
  // Fenced writes etcd refused (the fence's compare failed) since start.
  int64_t fenced_refusals() const { return fenced_refusals_.load(); }

  // Registers the profile if new; returns true when it was created. An
  // invalidated profile is not brought back (FAILED_PRECONDITION).
  absl::StatusOr<bool> RegisterProfile(const std::string& cpt, const cpt::Attributes& attributes,
                                       const std::string& origin, absl::Time now);
  // The profile stops resolving; its VMs drain until `release_after`.
  absl::Status InvalidateProfile(const std::string& cpt, absl::Time now, absl::Time release_after,
                                 const std::string& replaced_by = "");
  // Removes a profile that has no VMs left.
  absl::Status RemoveProfile(const std::string& cpt);
  // A VM joins its profile's pool (or the spares, with an empty cpt); its
  // address lease is taken atomically (ALREADY_EXISTS if another VM holds it).
  absl::Status AddVm(const VmRecord& vm);
  // Moves a ready spare of `service` into the profile's pool; nullopt if none.
  absl::StatusOr<std::optional<VmRecord>> ClaimSpare(const std::string& service,
                                                     const std::string& cpt);
  // Spares of a service, any state.
  std::vector<VmRecord> Spares(const std::string& service) const;
  absl::Status SetVmState(const std::string& name, VmState state,
                          absl::Time release_after = absl::InfiniteFuture());
  // Removes the VM and frees its lease.
  absl::Status RemoveVm(const std::string& name);
  // Writes last_seen of profiles seen since the previous flush; returns how many.
  absl::StatusOr<int> FlushLastSeen();

 private:
  // Runs `txn` (through the thread's fence, if any); when it succeeded,
  // applies its success branch to the index as the events of its revision.
  // A fenced txn that the fence refused is PERMISSION_DENIED.
  absl::StatusOr<store::TxnResult> Commit(store::Txn txn);
  // Applies one revision's changes to the index; returns the CPTs whose
  // answers may have changed.
  void ApplyLocked(const std::vector<store::WatchEvent>& events, std::vector<std::string>& changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnWatch(const store::WatchResponse& response);
  absl::Status LoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void Changed(const std::string& cpt) const {
    if (listener_ && !cpt.empty()) listener_(cpt);
  }

  ChangeListener listener_;

  store::RegistryStore& store_;
  std::string instance_id_;
  absl::Mutex write_mu_;  // serialises mutations: store txn + index update
  mutable absl::Mutex mu_;
  // Node map: a ProfileRecord is ~350 bytes, and a flat map's empty slots
  // (up to half of them after a resize) would each cost as much.
  absl::node_hash_map<std::string, ProfileRecord> profiles_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, VmRecord> vms_ ABSL_GUARDED_BY(mu_);
  // last_seen as last written to the store, per profile
  absl::flat_hash_map<std::string, absl::Time> flushed_seen_ ABSL_GUARDED_BY(mu_);
  // store key -> revision of the change the index last applied to it (live
  // keys; deleted keys until the watch has passed their delete)
  absl::flat_hash_map<std::string, int64_t> key_revision_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> deleted_at_ ABSL_GUARDED_BY(mu_);
  int64_t loaded_revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t watched_revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_watch_event_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool following_ ABSL_GUARDED_BY(mu_) = false;
  bool resync_ ABSL_GUARDED_BY(mu_) = false;  // the watch ended: re-read and watch again
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t resyncs_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> fenced_refusals_{0};
  std::unique_ptr<store::WatchHandle> watch_;  // follower_'s (and Follow's) only
  std::thread follower_;
};

}  // namespace ppe::registry
