// A replica on a real 3-member etcd that loses two members (no quorum): the
// allocation lock and the store's writes fail within their deadlines with a
// status that says etcd has no quorum, not "held by another replica".

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "ppe-service/cluster/replica.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "tests/store/etcd_fixture.h"

namespace ppe::cluster {
namespace {

using store::testing::EtcdFixture;

TEST_CASE("replica without etcd quorum: the lock and writes fail saying so",
          "[store][etcd][cluster]") {
  EtcdFixture fx(3);
  auto& cluster = *fx.cluster;
  auto etcd = fx.Connect({.prefix = "/nq/",
                          .timeout = absl::Seconds(2),
                          .timeout_while_unanswered = absl::Milliseconds(500)});
  registry::Registry registry(*etcd);
  REQUIRE(registry.Load().ok());
  REQUIRE(registry.Follow().ok());
  Replica::Options replica_options;
  replica_options.id = "r1";
  replica_options.timeout = absl::Seconds(1);
  auto replica = Replica::Start(*etcd, registry, replica_options);
  REQUIRE(replica.ok());

  auto held = (*replica)->Lock("video/a", absl::Seconds(5));
  REQUIRE(held.ok());
  (*held)();
  CHECK((*replica)->etcd_reachable());
  const int64_t errors_before = (*replica)->etcd_errors();

  auto leader = cluster.Leader();
  REQUIRE(leader.ok());
  cluster.Kill(*leader);
  cluster.Kill((*leader + 1) % 3);

  const absl::Time began = absl::Now();
  auto locked = (*replica)->Lock("video/b", absl::Seconds(3));
  const absl::Duration took = absl::Now() - began;
  REQUIRE_FALSE(locked.ok());
  INFO(locked.status().ToString());
  CHECK(absl::IsUnavailable(locked.status()));
  CHECK(absl::StrContains(locked.status().message(), "no quorum"));
  CHECK(took < absl::Seconds(5));

  // The first write waits out the full deadline; while etcd stays silent the
  // next ones fail in the shorter one, with the same status.
  for (absl::Duration within : {absl::Seconds(3), absl::Seconds(1)}) {
    const absl::Time sent = absl::Now();
    auto written = etcd->Txn({.success = {store::Op::Put("/k", "v")}});
    REQUIRE_FALSE(written.ok());
    INFO(written.status().ToString());
    CHECK(absl::StrContains(written.status().message(), "no quorum"));
    CHECK(absl::Now() - sent < within);
  }
  // The metrics' view (ppe_etcd_reachable, ppe_etcd_errors_total): the lock
  // and the two writes at least, and the heartbeat's failed writes.
  CHECK_FALSE((*replica)->etcd_reachable());
  CHECK((*replica)->etcd_errors() >= errors_before + 3);
}

}  // namespace
}  // namespace ppe::cluster
