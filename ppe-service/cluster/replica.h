#pragma once

// One ppe-server process among several sharing an etcd registry:
//  - a session lease kept alive by this process (LeaseKeeper, granted anew
//    after a stall longer than its TTL); keys bound to it vanish within its
//    TTL when the process dies or stalls;
//  - membership: /ppe/cluster/members/<id> (bound to the lease) carries the
//    replica's address, the revision its registry watch has applied and its
//    watch lag, refreshed every `heartbeat`;
//  - cluster-wide single flight: Lock() holds /ppe/alloc/<name> (bound to the
//    lease) through an etcd transaction, so one replica at a time allocates
//    for a (CPT, service);
//  - leader election through etcd's v3election (LeaderElector): the loops
//    given to RunWhileLeader run only on the leader, each pass inside a
//    Registry::FenceScope, so their registry writes compare the leader key
//    and etcd refuses them once another replica leads. Before each round the
//    leader writes /ppe/cluster/leader_pass ("<id> <unix ms>") fenced; a
//    refusal there (or of any fenced write) makes it step down and campaign
//    again. Work that must run only on the leader but on a schedule of its
//    own (the host monitor, the usage monitor's actions) goes through
//    RunIfLeader, inside the same fence.

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ppe-service/cluster/leader_elector.h"
#include "ppe-service/cluster/lease_keeper.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe/config/v1/config.pb.h"

namespace ppe::cluster {

class Replica {
 public:
  struct Options {
    std::string id{};       // unique per process; default "<host>:<pid>"
    std::string address{};  // where its Resolver/Admin service listens (shown by status)
    // TTL of the session lease and of the leader's lease: a dead replica's
    // locks and membership, and a dead leader's role, go within it.
    absl::Duration ttl = absl::Seconds(2);
    absl::Duration heartbeat = absl::Seconds(1);
    absl::Duration timeout = absl::Seconds(5);  // deadline of each etcd call
  };
  // listen (as the address) and registry.etcd_lease_ttl_s.
  static Options OptionsFromConfig(const ppe::config::v1::PpeConfig& config);

  // One member as its heartbeat key says.
  struct Member {
    std::string id;
    std::string address;
    int64_t watched_revision = 0;
    double watch_lag_ms = 0;  // heartbeat put -> seen through this replica's own watch
    absl::Time updated;
    bool leader = false;
  };

  // Grants the session lease and starts the heartbeat of the member key. The
  // store and the registry (which must Follow the store) must outlive it.
  static absl::StatusOr<std::unique_ptr<Replica>> Start(store::EtcdRegistryStore& store,
                                                        registry::Registry& registry,
                                                        Options options);
  ~Replica();  // stops the loops, resigns, revokes the session lease

  // Blocks until this process holds the cluster-wide lock `name` and its
  // registry has applied everything written before it got it (so what the
  // previous holder wrote is visible), or `wait` passes (DEADLINE_EXCEEDED).
  // Returns the release. The lock also goes when this process dies (lease).
  absl::StatusOr<std::function<void()>> Lock(const std::string& name, absl::Duration wait);

  // Runs `pass` every `interval` while this replica leads, inside the
  // leader's fence. `on_elected` runs once per election win, fenced, before
  // the first pass. Both before Campaign.
  void RunWhileLeader(std::string name, absl::Duration interval, std::function<void()> pass);
  void OnElected(std::function<void()> on_elected);

  // Starts campaigning for the leader role in the background.
  void Campaign();

  // Runs `action` now, inside the leader's fence, when this replica leads
  // (true); false without running it when it does not. A replica deposed
  // meanwhile has the action's registry writes refused by etcd.
  bool RunIfLeader(const std::function<void()>& action);
  // RunIfLeader as a function that stays safe to call after the Replica is
  // gone (it then returns false): for threads that may outlive it.
  using LeaderGate = std::function<bool(const std::function<void()>& action)>;
  LeaderGate leader_gate() const;

  bool is_leader() const;
  const std::string& id() const { return options_.id; }
  // The leader's id (NOT_FOUND when none) and the live members.
  absl::StatusOr<std::string> Leader();
  absl::StatusOr<std::vector<Member>> Members();

  // What this replica knows of the cluster, for status: answers within
  // about a second even when etcd has no quorum or cannot be reached.
  struct View {
    std::string leader{};  // "" when none is known
    std::vector<Member> members{};
    absl::Time read_at = absl::InfinitePast();  // when leader and members were read
    // etcd did not answer: leader and members are the last ones read (none
    // before the first read), not today's.
    bool stale = false;
    // InfiniteFuture while etcd answers; else since when it has not (the
    // last write or read that succeeded), with the last error.
    absl::Time unreachable_since = absl::InfiniteFuture();
    std::string etcd_error{};
  };
  // Reads leader and members from etcd unless the heartbeat says etcd does
  // not answer (its last write failed or has been waiting over a second);
  // then, or when the read fails, the last view read (the heartbeat reads
  // one after each write), marked stale.
  View StatusView();
  // Fenced writes etcd refused since start (a deposed leader's late writes).
  int64_t fenced_refusals() const;
  // Whether etcd answers, as the heartbeat sees it (no etcd call): false
  // after its last write failed or while one has waited over a second.
  bool etcd_reachable() const;
  // etcd calls of this process that etcd left unanswered since start
  // (DEADLINE_EXCEEDED, UNAVAILABLE: no quorum, or no member reachable): the
  // registry store's Range and Txn calls, the heartbeat writes and the
  // Lock calls that gave up on etcd.
  int64_t etcd_errors() const;

 private:
  struct Stubs;
  Replica(store::EtcdRegistryStore& store, registry::Registry& registry, Options options);
  void HeartbeatLoop();
  // Reads leader and members into last_view_.
  absl::Status ReadView();
  void CampaignLoop();
  void Deposed(const std::string& why);
  void SetLeading(bool leader);
  std::string Key(const std::string& suffix) const;

  store::EtcdRegistryStore& store_;
  registry::Registry& registry_;
  const Options options_;
  std::shared_ptr<Stubs> stubs_;
  std::unique_ptr<LeaseKeeper> session_;
  std::shared_ptr<LeaderElector> elector_;  // shared with fence_
  std::shared_ptr<const registry::Registry::Fence> fence_;
  // Whether this replica leads, and when etcd last confirmed it, shared with
  // the leader gates: a gate acts only within a lease TTL of the last
  // confirmation, so a leader cut off from etcd stops acting when its lease
  // may have run out, even while its calls to etcd still wait.
  struct Leading {
    absl::Mutex mu;
    bool leader ABSL_GUARDED_BY(mu) = false;
    absl::Time confirmed ABSL_GUARDED_BY(mu) = absl::InfinitePast();
    absl::Duration ttl ABSL_GUARDED_BY(mu);
  };
  const std::shared_ptr<Leading> leading_ = std::make_shared<Leading>();
  void Confirmed(absl::Time at);

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool leader_ ABSL_GUARDED_BY(mu_) = false;
  int64_t term_ ABSL_GUARDED_BY(mu_) = 0;  // election wins so far
  double watch_lag_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fenced_refusals_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t etcd_errors_ ABSL_GUARDED_BY(mu_) = 0;  // heartbeats and locks unanswered
  // etcd's health as the heartbeat sees it, and the last view read.
  absl::Time etcd_ok_at_ ABSL_GUARDED_BY(mu_) = absl::Now();
  absl::Time heartbeat_started_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // none in flight
  absl::Time unreachable_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::string etcd_error_ ABSL_GUARDED_BY(mu_);
  View last_view_ ABSL_GUARDED_BY(mu_);
  struct Loop {
    std::string name;
    absl::Duration interval;
    std::function<void()> pass;
  };
  std::vector<Loop> loops_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> on_elected_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace ppe::cluster
