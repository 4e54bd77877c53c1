// EtcdRegistryStore beyond the contract: key prefixes on a shared etcd, and a
// real 3-member etcd losing a member while a replica writes and watches.

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "tests/store/etcd_fixture.h"

namespace ppe::store {
namespace {

using testing::EtcdCluster;
using testing::EtcdFixture;
using testing::WatchLog;

// Every revision the watch delivered, in order.
std::vector<int64_t> Revisions(WatchLog& log) {
  std::vector<int64_t> out;
  for (const WatchResponse& r : log.Responses()) {
    if (r.status.ok()) out.push_back(r.revision);
  }
  return out;
}

TEST_CASE("etcd store: prefixes keep two registries apart on one etcd", "[store][etcd]") {
  EtcdFixture etcd;
  auto a = etcd.Connect({.prefix = "a/"});
  auto b = etcd.Connect({.prefix = "b/"});
  REQUIRE(a->Put("cpt/1", "in a").ok());
  REQUIRE(b->Put("cpt/1", "in b").ok());
  CHECK(a->Get("cpt/1")->value().value == "in a");
  CHECK(b->Get("cpt/1")->value().value == "in b");
  REQUIRE(a->List("")->kvs.size() == 1);
  CHECK(a->List("")->kvs[0].key == "cpt/1");
  Txn wipe;
  wipe.success = {Op::DeletePrefix("cpt/")};
  REQUIRE(a->Txn(wipe)->succeeded);
  CHECK(a->List("")->kvs.empty());
  CHECK(b->Get("cpt/1")->has_value());
  // One etcd, one revision counter: both stores see each other's writes in it.
  CHECK(a->CurrentRevision() == b->CurrentRevision());
}

TEST_CASE("etcd store: listing splits the key space into small sub-ranges", "[store][etcd]") {
  EtcdFixture etcd;
  EtcdRegistryStore::Options options;
  options.prefix = "";  // the whole key space: the lister's empty-prefix case
  options.list_page_size = 2;
  options.list_parallelism = 2;
  std::unique_ptr<EtcdRegistryStore> connected = etcd.Connect(options);
  EtcdRegistryStore& store = *connected;
  // Keys that are prefixes of others, long shared prefixes, 0x00 and 0xff
  // bytes at every position the splitter looks at.
  std::vector<std::string> keys = {std::string(1, '\0'),
                                   std::string("\0\0", 2),
                                   "\xff",
                                   "\xff\xff\xff",
                                   "\xff\xff\xfe",
                                   "a",
                                   "ab",
                                   "abc",
                                   "abd",
                                   std::string("abc\0", 4),
                                   "long/shared/prefix/1",
                                   "long/shared/prefix/2",
                                   "long/shared/prefix/3",
                                   "long/shared/prefix/30",
                                   "long/shared/prefix/31",
                                   "long/shared/prefiy"};
  for (const std::string& key : keys) REQUIRE(store.Put(key, "v:" + key).ok());
  std::sort(keys.begin(), keys.end());

  std::vector<std::string> listed;
  absl::StatusOr<int64_t> revision = store.ListPages("", [&](std::vector<KeyValue>& page) {
    CHECK(page.size() <= 2);
    for (const KeyValue& kv : page) {
      CHECK(kv.value == "v:" + kv.key);
      listed.push_back(kv.key);
    }
    return absl::OkStatus();
  });
  REQUIRE(revision.ok());
  CHECK(*revision == store.CurrentRevision());
  CHECK(listed == keys);

  std::vector<std::string> under_long;
  for (const std::string& key : keys) {
    if (key.starts_with("long/shared/prefix/3")) under_long.push_back(key);
  }
  listed.clear();
  absl::StatusOr<RangeResult> three = store.List("long/shared/prefix/3");
  REQUIRE(three.ok());
  for (const KeyValue& kv : three->kvs) listed.push_back(kv.key);
  CHECK(listed == under_long);
}

// Writes `n` keys; each must succeed within `patience` (retrying while etcd
// elects a new leader). Returns the attempts that failed.
int WriteAll(RegistryStore& store, const std::string& tag, int n, absl::Duration patience) {
  int failed = 0;
  for (int i = 0; i < n; ++i) {
    const absl::Time deadline = absl::Now() + patience;
    while (true) {
      auto put = store.Put("k/" + tag + "/" + std::to_string(i), "v");
      if (put.ok()) break;
      ++failed;
      REQUIRE(absl::Now() < deadline);
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  return failed;
}

TEST_CASE("etcd store: one of three members killed, writes and watches go on", "[store][etcd]") {
  EtcdFixture etcd(3);
  EtcdCluster& cluster = *etcd.cluster;
  // A short deadline: a write caught by the leader's death fails after 1 s
  // rather than 5, and is tried again.
  auto store = etcd.Connect({.prefix = "ppe/", .timeout = absl::Seconds(1)});
  WatchLog log;
  auto watch = store->Watch("k/", 0, log.Callback());
  REQUIRE(watch.ok());
  WriteAll(*store, "before", 20, absl::Seconds(5));

  auto leader = cluster.Leader();
  REQUIRE(leader.ok());
  SECTION("a follower: writes go on") {
    cluster.Kill((*leader + 1) % 3);
    // The client balances over all three members, so a write already on its
    // way to the killed one fails (UNAVAILABLE) and is tried again on another;
    // none waits for an election, and none is lost (checked below).
    const absl::Time killed = absl::Now();
    const int failed = WriteAll(*store, "after", 50, absl::Seconds(5));
    std::printf("etcd follower killed: 50 writes done %.0f ms later, %d attempts failed\n",
                absl::ToDoubleMilliseconds(absl::Now() - killed), failed);
  }
  SECTION("the raft leader: writes resume once the others elect one") {
    cluster.Kill(*leader);
    const absl::Time killed = absl::Now();
    // The first write may wait for (or fail during) the election; none is lost.
    const int failed = WriteAll(*store, "after", 50, absl::Seconds(10));
    std::printf("etcd leader killed: 50 writes done %.0f ms later, %d attempts failed\n",
                absl::ToDoubleMilliseconds(absl::Now() - killed), failed);
    REQUIRE(cluster.Leader().ok());
    CHECK(*cluster.Leader() != *leader);
  }
  // The watch followed every write, across a stream broken by the kill.
  const int64_t head = store->CurrentRevision();
  REQUIRE(log.WaitFor(70, absl::Seconds(30)));
  std::vector<int64_t> revisions = Revisions(log);
  REQUIRE(revisions.size() == 70);
  for (size_t i = 1; i < revisions.size(); ++i) CHECK(revisions[i] == revisions[i - 1] + 1);
  CHECK(revisions.back() == head);
  CHECK(store->List("k/")->kvs.size() == 70);
}

}  // namespace
}  // namespace ppe::store
