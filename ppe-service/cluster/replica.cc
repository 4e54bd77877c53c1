#include "ppe-service/cluster/replica.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"
#include "ppe/v1/admin.pb.h"

namespace ppe::cluster {
namespace {

namespace pb = etcdserverpb;

constexpr const char* kMembers = "/ppe/cluster/members/";
constexpr const char* kLocks = "/ppe/alloc/";
constexpr const char* kElection = "/ppe/cluster/leader";
// The leader's mark, written (fenced) before each round of its loops.
constexpr const char* kLeaderPass = "/ppe/cluster/leader_pass";

absl::Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      "etcd " + what + ": " + status.error_message());
}

// etcd did not answer (as opposed to answering with an error): its own
// deadline (UNKNOWN "context deadline exceeded") counts too.
bool Unanswered(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         (status.error_code() == grpc::StatusCode::UNKNOWN &&
          absl::StrContains(status.error_message(), "deadline exceeded"));
}

// A heartbeat write waiting this long means etcd does not answer (it takes
// milliseconds with a quorum).
constexpr absl::Duration kSlowHeartbeat = absl::Seconds(1);

std::string DefaultId() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return absl::StrCat(host, ":", getpid());
}

}  // namespace

struct Replica::Stubs {
  std::unique_ptr<pb::KV::Stub> kv;
};

Replica::Options Replica::OptionsFromConfig(const ppe::config::v1::PpeConfig& config) {
  return {.address = config.listen(), .ttl = absl::Seconds(config.registry().etcd_lease_ttl_s())};
}

Replica::Replica(store::EtcdRegistryStore& store, registry::Registry& registry, Options options)
    : store_(store), registry_(registry), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Replica>> Replica::Start(store::EtcdRegistryStore& store,
                                                        registry::Registry& registry,
                                                        Options options) {
  if (options.id.empty()) options.id = DefaultId();
  std::unique_ptr<Replica> r(new Replica(store, registry, std::move(options)));
  r->stubs_ = std::make_shared<Stubs>();
  r->stubs_->kv = pb::KV::NewStub(store.channel());
  absl::StatusOr<std::unique_ptr<LeaderElector>> elector =
      LeaderElector::Connect({.endpoints = {},
                              .name = r->Key(kElection),
                              .value = r->options_.id,
                              .ttl = r->options_.ttl,
                              .timeout = r->options_.timeout,
                              .store_prefix = store.options().prefix,
                              .channel = store.channel()});
  if (!elector.ok()) return elector.status();
  r->elector_ = std::move(*elector);
  r->fence_ = std::make_shared<const registry::Registry::Fence>(
      [e = r->elector_](store::Txn txn) { return e->Fence(std::move(txn)); });
  PPE_ASSIGN_OR_RETURN(std::unique_ptr<LeaseKeeper> session,
                       LeaseKeeper::Grant(store.channel(), {.ttl = r->options_.ttl,
                                                            .timeout = r->options_.timeout,
                                                            .regrant = true,
                                                            .what = "session lease"}));
  r->session_ = std::move(session);
  Replica* self = r.get();
  r->threads_.emplace_back([self] { self->HeartbeatLoop(); });
  spdlog::info("replica {} joined the cluster (lease TTL {} s)", r->options_.id,
               absl::ToDoubleSeconds(r->options_.ttl));
  return r;
}

Replica::~Replica() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  SetLeading(false);  // gates that outlive this object act no more
  session_->Stop();
  elector_->StopKeepAlive();  // ends a Campaign waiting behind another leader sooner
  for (std::thread& t : threads_) t.join();
  elector_->Resign().IgnoreError();
  session_->Revoke();
}

std::string Replica::Key(const std::string& suffix) const {
  return store_.options().prefix + suffix;
}

void Replica::HeartbeatLoop() {
  while (true) {
    const int64_t lease = session_->id();
    ppe::v1::ReplicaStatus me;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      me.set_leader(leader_);
      me.set_watch_lag_ms(watch_lag_ms_);
    }
    me.set_id(options_.id);
    me.set_address(options_.address);
    me.set_watched_revision(registry_.watched_revision());
    me.set_updated_unix_ms(absl::ToUnixMillis(absl::Now()));
    pb::PutRequest put;
    put.set_key(Key(kMembers) + options_.id);
    put.set_value(me.SerializeAsString());
    put.set_lease(lease);
    pb::PutResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    // Watch lag: this write, from sending it until this replica's own registry
    // watch has applied its revision (store revision = etcd - 1): the commit
    // plus the watch delivery, as another replica's write reaches the index.
    const absl::Time written = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      heartbeat_started_ = written;
    }
    grpc::Status s = stubs_->kv->Put(&context, put, &response);
    {
      absl::MutexLock lock(&mu_);
      heartbeat_started_ = absl::InfiniteFuture();
      if (s.ok()) {
        etcd_ok_at_ = absl::Now();
        unreachable_since_ = absl::InfiniteFuture();
        etcd_error_.clear();
      } else {
        unreachable_since_ = std::min(unreachable_since_, etcd_ok_at_);
        etcd_error_ = s.error_message();
        if (Unanswered(s)) ++etcd_errors_;
      }
    }
    if (s.ok()) {
      // The view status shows when etcd stops answering: the last leader known.
      ReadView().IgnoreError();
      if (registry_.WaitWatched(response.header().revision() - 1, options_.timeout)) {
        absl::MutexLock lock(&mu_);
        watch_lag_ms_ = absl::ToDoubleMilliseconds(absl::Now() - written);
      }
    } else {
      spdlog::warn("replica {}: heartbeat failed: {}", options_.id, s.error_message());
    }
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.heartbeat)) return;
  }
}

void Replica::CampaignLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    absl::StatusOr<LeaderElector::LeaderKey> won = elector_->Campaign(absl::Seconds(5));
    if (!won.ok()) {
      // Still waiting behind another leader (or etcd is away): campaign again.
      // The unanswered campaign's key goes with its lease.
      elector_->StopKeepAlive();
      continue;
    }
    std::vector<std::function<void()>> elected;
    std::vector<Loop> loops;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      leader_ = true;
      SetLeading(true);
      ++term_;
      elected = on_elected_;
      loops = loops_;
    }
    spdlog::info("replica {} leads (leader key {})", options_.id, won->key);
    const int64_t refused_before = registry_.fenced_refusals();
    {
      registry::Registry::FenceScope scope(fence_);
      for (auto& f : elected) f();
    }
    std::vector<absl::Time> due(loops.size(), absl::Now());
    absl::Time checked = absl::Now();
    std::string why;
    while (why.empty()) {
      {
        absl::MutexLock lock(&mu_);
        if (stop_) return;
      }
      // The mark first: a leader that was stalled past its lease learns here,
      // from etcd refusing the fenced write, before its loops act.
      const absl::Time sent = absl::Now();
      absl::StatusOr<store::Txn> mark = elector_->Fence(
          {.success = {store::Op::Put(kLeaderPass,
                                      absl::StrCat(options_.id, " ", absl::ToUnixMillis(sent)))}});
      absl::StatusOr<store::TxnResult> marked =
          mark.ok() ? store_.Txn(*mark) : absl::StatusOr<store::TxnResult>(mark.status());
      if (marked.ok() && !marked->succeeded) {
        {
          absl::MutexLock lock(&mu_);
          ++fenced_refusals_;
        }
        why = "etcd refused a fenced write (the leader key is no longer ours)";
        break;
      }
      // The loops act only right after etcd confirmed the role. Unconfirmed
      // (etcd unreachable: partition, no quorum) for a lease TTL, the lease
      // may be gone and another replica may lead: step down.
      if (marked.ok()) {
        checked = std::max(checked, sent);
        Confirmed(sent);
      }
      const absl::Time now = absl::Now();
      if (!marked.ok() && now - checked > options_.ttl) {
        why = absl::StrCat("etcd unreachable for a lease TTL: ", marked.status().message());
        break;
      }
      for (size_t i = 0; i < loops.size() && marked.ok(); ++i) {
        if (now < due[i]) continue;
        registry::Registry::FenceScope scope(fence_);
        loops[i].pass();
        due[i] = absl::Now() + loops[i].interval;
      }
      if (registry_.fenced_refusals() > refused_before) {
        why = "etcd refused a fenced write";
        break;
      }
      // Still the leader? The election's leader is the oldest key; a stalled
      // leader whose lease ran out finds another one there.
      absl::StatusOr<std::string> leader = elector_->Leader();
      if (leader.ok()) {
        checked = absl::Now();
        Confirmed(checked);
        if (*leader != options_.id) why = absl::StrCat("the leader is now ", *leader);
      } else if (absl::Now() - checked > options_.ttl) {
        why = absl::StrCat("etcd unreachable for a lease TTL: ", leader.status().message());
      }
      if (!why.empty()) break;
      absl::Time next = absl::Now() + options_.ttl / 4;
      for (absl::Time d : due) next = std::min(next, d);
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_),
                               std::max(next - absl::Now(), absl::Milliseconds(10)))) {
        return;
      }
    }
    Deposed(why);
  }
}

void Replica::Deposed(const std::string& why) {
  {
    absl::MutexLock lock(&mu_);
    leader_ = false;
    SetLeading(false);
  }
  spdlog::warn("replica {} no longer leads: {}", options_.id, why);
  elector_->Resign().IgnoreError();  // deletes the key if it is still ours
}

void Replica::Campaign() {
  threads_.emplace_back([this] { CampaignLoop(); });
}

void Replica::RunWhileLeader(std::string name, absl::Duration interval,
                             std::function<void()> pass) {
  absl::MutexLock lock(&mu_);
  loops_.push_back({std::move(name), interval, std::move(pass)});
}

void Replica::OnElected(std::function<void()> on_elected) {
  absl::MutexLock lock(&mu_);
  on_elected_.push_back(std::move(on_elected));
}

bool Replica::RunIfLeader(const std::function<void()>& action) { return leader_gate()(action); }

Replica::LeaderGate Replica::leader_gate() const {
  return [leading = leading_, fence = fence_](const std::function<void()>& action) {
    {
      absl::MutexLock lock(&leading->mu);
      if (!leading->leader || absl::Now() - leading->confirmed > leading->ttl) return false;
    }
    registry::Registry::FenceScope scope(fence);
    action();
    return true;
  };
}

void Replica::SetLeading(bool leader) {
  absl::MutexLock lock(&leading_->mu);
  leading_->leader = leader;
  leading_->ttl = options_.ttl;
  if (leader) leading_->confirmed = absl::Now();  // the campaign was just won
}

void Replica::Confirmed(absl::Time at) {
  absl::MutexLock lock(&leading_->mu);
  leading_->confirmed = std::max(leading_->confirmed, at);
}

bool Replica::is_leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

int64_t Replica::fenced_refusals() const {
  absl::MutexLock lock(&mu_);
  return fenced_refusals_ + registry_.fenced_refusals();
}

absl::StatusOr<std::string> Replica::Leader() { return elector_->Leader(); }

absl::StatusOr<std::vector<Replica::Member>> Replica::Members() {
  PPE_ASSIGN_OR_RETURN(store::RangeResult listed, store_.List(kMembers));
  absl::StatusOr<std::string> leader = Leader();
  std::vector<Member> out;
  for (const store::KeyValue& kv : listed.kvs) {
    ppe::v1::ReplicaStatus s;
    if (!s.ParseFromString(kv.value)) continue;
    out.push_back({.id = s.id(),
                   .address = s.address(),
                   .watched_revision = s.watched_revision(),
                   .watch_lag_ms = s.watch_lag_ms(),
                   .updated = absl::FromUnixMillis(s.updated_unix_ms()),
                   .leader = leader.ok() && *leader == s.id()});
  }
  return out;
}

bool Replica::etcd_reachable() const {
  absl::MutexLock lock(&mu_);
  return unreachable_since_ == absl::InfiniteFuture() &&
         !(heartbeat_started_ < absl::Now() - kSlowHeartbeat);
}

int64_t Replica::etcd_errors() const {
  absl::MutexLock lock(&mu_);
  return etcd_errors_ + store_.unanswered_calls();
}

Replica::View Replica::StatusView() {
  const absl::Time now = absl::Now();
  View out;
  {
    absl::MutexLock lock(&mu_);
    if (heartbeat_started_ < now - kSlowHeartbeat) {
      unreachable_since_ = std::min(unreachable_since_, etcd_ok_at_);
      if (etcd_error_.empty()) etcd_error_ = "a heartbeat write has had no answer";
    }
    if (unreachable_since_ != absl::InfiniteFuture()) {
      out = last_view_;
      out.stale = true;
      out.unreachable_since = unreachable_since_;
      out.etcd_error = etcd_error_;
      return out;
    }
  }
  if (absl::Status read = ReadView(); !read.ok()) {
    absl::MutexLock lock(&mu_);
    unreachable_since_ = std::min(unreachable_since_, etcd_ok_at_);
    etcd_error_ = std::string(read.message());
    out = last_view_;
    out.stale = true;
    out.unreachable_since = unreachable_since_;
    out.etcd_error = etcd_error_;
    return out;
  }
  absl::MutexLock lock(&mu_);
  return last_view_;
}

absl::Status Replica::ReadView() {
  const absl::Time now = absl::Now();
  PPE_ASSIGN_OR_RETURN(std::vector<Member> members, Members());
  absl::StatusOr<std::string> leader = absl::NotFoundError("no leader");
  for (const Member& m : members) {
    if (m.leader) leader = m.id;
  }
  if (!leader.ok()) leader = Leader();  // none, or one without a membership key
  if (!leader.ok() && !absl::IsNotFound(leader.status())) return leader.status();
  absl::MutexLock lock(&mu_);
  etcd_ok_at_ = std::max(etcd_ok_at_, now);
  last_view_ = {
      .leader = leader.ok() ? *leader : "", .members = std::move(members), .read_at = now};
  return absl::OkStatus();
}

absl::StatusOr<std::function<void()>> Replica::Lock(const std::string& name, absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  const std::string key = Key(kLocks) + name;
  absl::Duration backoff = absl::Milliseconds(2);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return absl::CancelledError("replica stopping");
    }
    const int64_t lease = session_->id();
    pb::TxnRequest txn;
    pb::Compare* absent = txn.add_compare();
    absent->set_key(key);
    absent->set_target(pb::Compare::CREATE);
    absent->set_result(pb::Compare::EQUAL);
    absent->set_create_revision(0);
    pb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(options_.id);
    put->set_lease(lease);
    pb::TxnResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(std::min(deadline, absl::Now() + options_.timeout)));
    grpc::Status s = stubs_->kv->Txn(&context, txn, &response);
    if (s.ok() && response.succeeded()) {
      const int64_t revision = response.header().revision();
      // What the previous holder wrote is older than this revision.
      if (!registry_.WaitWatched(revision - 1,
                                 std::max(deadline - absl::Now(), absl::ZeroDuration()))) {
        spdlog::warn("lock {}: the registry watch lags behind revision {}", name, revision - 1);
      }
      std::shared_ptr<Stubs> stubs = stubs_;
      absl::Duration timeout = options_.timeout;
      return [stubs, key, revision, timeout] {
        pb::TxnRequest release;
        pb::Compare* mine = release.add_compare();
        mine->set_key(key);
        mine->set_target(pb::Compare::CREATE);
        mine->set_result(pb::Compare::EQUAL);
        mine->set_create_revision(revision);
        release.add_success()->mutable_request_delete_range()->set_key(key);
        pb::TxnResponse released;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
        stubs->kv->Txn(&context, release, &released).ok();
      };
    }
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return FromGrpc(s, "lock");
    }
    if (absl::Now() + backoff > deadline) {
      // Held by another replica, or etcd did not answer (no quorum): say which.
      if (!s.ok()) {
        {
          absl::MutexLock lock(&mu_);
          ++etcd_errors_;
        }
        return absl::UnavailableError(absl::StrCat(
            "lock ", name,
            ": etcd did not answer (no quorum or no member reachable): ", s.error_message()));
      }
      return absl::DeadlineExceededError(absl::StrCat("lock ", name, " held by another replica"));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Milliseconds(50));
  }
}

}  // namespace ppe::cluster
