// Leader election through etcd's v3election on a real 3-member etcd: a leader
// whose lease lapses is replaced within TTL + 1 s, and its late writes are
// refused by the fence.

#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "ppe-service/cluster/leader_elector.h"
#include "tests/store/etcd_fixture.h"

namespace ppe::cluster {
namespace {

using store::testing::EtcdCluster;
using store::testing::EtcdFixture;

std::unique_ptr<LeaderElector> Candidate(const EtcdCluster& cluster, const std::string& value,
                                         absl::Duration ttl) {
  LeaderElector::Options options;
  options.endpoints = cluster.Endpoints();
  options.name = "/ppe/leader/scaler";
  options.value = value;
  options.ttl = ttl;
  auto elector = LeaderElector::Connect(options);
  REQUIRE(elector.ok());
  return std::move(*elector);
}

TEST_CASE("leader election: a stalled leader is replaced and fenced", "[store][etcd][cluster]") {
  EtcdFixture fx(3);
  const EtcdCluster& cluster = *fx.cluster;
  std::unique_ptr<store::EtcdRegistryStore> opened = fx.Connect();
  store::RegistryStore& registry = *opened;

  const absl::Duration ttl = absl::Seconds(2);
  auto a = Candidate(cluster, "replica-a", ttl);
  auto b = Candidate(cluster, "replica-b", ttl);
  REQUIRE(a->Campaign(absl::Seconds(10)).ok());
  CHECK(*a->Leader() == "replica-a");

  // b campaigns and waits behind a.
  std::atomic<bool> b_leads{false};
  absl::Time b_won;
  std::thread campaign([&] {
    if (b->Campaign(absl::Seconds(20)).ok()) {
      b_won = absl::Now();
      b_leads = true;
    }
  });
  absl::SleepFor(absl::Seconds(1));
  CHECK_FALSE(b_leads.load());  // a's keepalives hold the role

  // While a leads, its fenced write goes through.
  store::Txn write{.success = {store::Op::Put("/ppe/scaler/decision", "from a")}};
  auto fenced = a->Fence(write);
  REQUIRE(fenced.ok());
  CHECK(registry.Txn(*fenced)->succeeded);

  // a stalls: no more keepalives. etcd expires its lease within the TTL.
  a->StopKeepAlive();
  const absl::Time stalled = absl::Now();
  campaign.join();
  REQUIRE(b_leads.load());
  const absl::Duration failover = b_won - stalled;
  std::printf(
      "leader election: a new leader %.0f ms after the old one stopped its keepalives "
      "(TTL %.0f s)\n",
      absl::ToDoubleMilliseconds(failover), absl::ToDoubleSeconds(ttl));
  CHECK(failover <= ttl + absl::Seconds(1));
  CHECK(*b->Leader() == "replica-b");

  // a wakes up still believing it leads: its fenced write is refused...
  auto late = a->Fence({.success = {store::Op::Put("/ppe/scaler/decision", "late a")}});
  REQUIRE(late.ok());
  CHECK_FALSE(registry.Txn(*late)->succeeded);
  CHECK(registry.Get("/ppe/scaler/decision")->value().value == "from a");
  // ...while b's goes through.
  auto by_b = b->Fence({.success = {store::Op::Put("/ppe/scaler/decision", "from b")}});
  REQUIRE(by_b.ok());
  CHECK(registry.Txn(*by_b)->succeeded);
  // Without the fence, a's late write would have gone through: the compare is
  // what stops it.
  CHECK(registry.Txn({.success = {store::Op::Put("/ppe/scaler/unfenced", "late a")}})->succeeded);

  REQUIRE(b->Resign().ok());
  CHECK(b->Leader().status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ppe::cluster
