// The contract every RegistryStore implementation must meet. Each test case is
// instantiated once per implementation: MemoryImpl, SqliteImpl, and
// EtcdRegistryStore on a fresh real etcd of one (EtcdOneMember) and of three
// members (EtcdThreeMembers), with its keys under a prefix.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/synchronization/barrier.h"
#include "ppe-service/store/etcd_registry_store.h"
#include "ppe-service/store/memory_registry_store.h"
#include "ppe-service/store/registry_store.h"
#include "ppe-service/store/sqlite_registry_store.h"
#include "tests/fixtures/wait_for.h"
#include "tests/store/etcd_fixture.h"
#include "tests/store/store_test_util.h"

namespace ppe::store {
namespace {

using testing::TempDir;
using testing::WatchLog;

struct MemoryImpl {
  std::unique_ptr<RegistryStore> Make(int64_t history_revisions = 10000) {
    MemoryRegistryStore::Options options;
    options.history_revisions = history_revisions;
    return std::make_unique<MemoryRegistryStore>(options);
  }
};

struct SqliteImpl {
  TempDir dir;
  std::unique_ptr<RegistryStore> Make(int64_t history_revisions = 10000) {
    SqliteRegistryStore::Options options;
    options.history_revisions = history_revisions;
    auto store = SqliteRegistryStore::Open(dir.path() + "/registry.db", options);
    REQUIRE(store.ok());
    return std::move(*store);
  }
};

template <int kMembers>
struct EtcdImpl {
  testing::EtcdFixture etcd{kMembers};
  std::unique_ptr<RegistryStore> Make(int64_t history_revisions = 10000) {
    EtcdRegistryStore::Options options;
    options.prefix = "ppe/";
    options.history_revisions = history_revisions;
    // Small enough that the listing tests below split the key space.
    options.list_page_size = 300;
    options.list_parallelism = 3;
    return etcd.Connect(options);
  }
};
using EtcdOneMember = EtcdImpl<1>;
using EtcdThreeMembers = EtcdImpl<3>;

#define STORE_CONTRACT_TEST(name)                                                      \
  TEMPLATE_TEST_CASE(name, "[store][contract]", MemoryImpl, SqliteImpl, EtcdOneMember, \
                     EtcdThreeMembers)

std::string Value(RegistryStore& store, absl::string_view key) {
  absl::StatusOr<std::optional<KeyValue>> kv = store.Get(key);
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  return (*kv)->value;
}

std::vector<std::string> Keys(const RangeResult& range) {
  std::vector<std::string> keys;
  for (const KeyValue& kv : range.kvs) keys.push_back(kv.key);
  return keys;
}

STORE_CONTRACT_TEST("store contract: get, put, delete and key metadata") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  CHECK(store->CurrentRevision() == 0);

  auto missing = store->Get("cpt/a");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  CHECK(*store->Put("cpt/a", "one") == 1);
  auto kv = store->Get("cpt/a");
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  CHECK((*kv)->key == "cpt/a");
  CHECK((*kv)->value == "one");
  CHECK((*kv)->create_revision == 1);
  CHECK((*kv)->mod_revision == 1);
  CHECK((*kv)->version == 1);

  CHECK(*store->Put("cpt/a", "two") == 2);
  kv = store->Get("cpt/a");
  CHECK((*kv)->value == "two");
  CHECK((*kv)->create_revision == 1);
  CHECK((*kv)->mod_revision == 2);
  CHECK((*kv)->version == 2);

  CHECK(*store->Delete("cpt/a") == true);
  CHECK(store->CurrentRevision() == 3);
  CHECK_FALSE(store->Get("cpt/a")->has_value());
  // Deleting what is not there changes nothing, not even the revision.
  CHECK(*store->Delete("cpt/a") == false);
  CHECK(store->CurrentRevision() == 3);

  // Re-created: a new life with a new create_revision and version 1.
  CHECK(*store->Put("cpt/a", "three") == 4);
  kv = store->Get("cpt/a");
  CHECK((*kv)->create_revision == 4);
  CHECK((*kv)->version == 1);

  // Byte strings: embedded NUL, high bytes, empty value.
  const std::string key("bin/\0\xff\x01", 7);
  const std::string value("\0\x80zz\0", 5);
  REQUIRE(store->Put(key, value).ok());
  CHECK(Value(*store, key) == value);
  REQUIRE(store->Put("empty", "").ok());
  CHECK(Value(*store, "empty").empty());

  // etcd refuses empty keys.
  CHECK(store->Put("", "x").status().code() == absl::StatusCode::kInvalidArgument);
}

STORE_CONTRACT_TEST("store contract: list by prefix is sorted and revisioned") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  for (const char* key : {"a/2", "b", "a/10", "ab", "a/1"}) {
    REQUIRE(store->Put(key, std::string("v-") + key).ok());
  }
  REQUIRE(store->Put("\xff\xff", "high").ok());

  auto a = store->List("a/");
  REQUIRE(a.ok());
  CHECK(Keys(*a) == std::vector<std::string>{"a/1", "a/10", "a/2"});
  CHECK(a->kvs[1].value == "v-a/10");
  CHECK(a->revision == store->CurrentRevision());

  auto all = store->List("");
  REQUIRE(all.ok());
  CHECK(Keys(*all) == std::vector<std::string>{"a/1", "a/10", "a/2", "ab", "b", "\xff\xff"});
  CHECK(Keys(*store->List("a")) == std::vector<std::string>{"a/1", "a/10", "a/2", "ab"});
  CHECK(Keys(*store->List("\xff")) == std::vector<std::string>{"\xff\xff"});
  CHECK(store->List("zz")->kvs.empty());
}

STORE_CONTRACT_TEST("store contract: paged list is the list, at one revision") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  // 2 500 keys under "p/" sharing a long prefix, the key "p" itself, byte
  // extremes and neighbours outside the prefix; 100 puts per transaction.
  std::vector<std::string> keys = {"p", std::string("p/\0", 3), "p/\xff\xff", "p/a", "p/b/c"};
  for (int i = 0; i < 2500; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "p/shared-prefix-%05d", i);
    keys.emplace_back(key);
  }
  for (size_t first = 0; first < keys.size(); first += 100) {
    Txn txn;
    for (size_t i = first; i < std::min(first + 100, keys.size()); ++i) {
      txn.success.push_back(Op::Put(keys[i], "value of " + keys[i]));
    }
    REQUIRE(store->Txn(txn)->succeeded);
  }
  for (const char* outside : {"o", "o/p", "q", "q/"}) REQUIRE(store->Put(outside, "x").ok());

  absl::StatusOr<RangeResult> list = store->List("p");
  REQUIRE(list.ok());
  REQUIRE(list->kvs.size() == keys.size());
  std::vector<KeyValue> paged;
  int pages = 0;
  absl::StatusOr<int64_t> revision = store->ListPages("p", [&](std::vector<KeyValue>& page) {
    CHECK_FALSE(page.empty());
    ++pages;
    for (KeyValue& kv : page) paged.push_back(std::move(kv));
    return absl::OkStatus();
  });
  REQUIRE(revision.ok());
  CHECK(*revision == list->revision);
  CHECK(pages > 1);
  CHECK(paged == list->kvs);

  // A failing callback stops the listing with its status.
  pages = 0;
  absl::StatusOr<int64_t> stopped = store->ListPages("p/", [&](std::vector<KeyValue>&) {
    ++pages;
    return absl::AbortedError("enough");
  });
  CHECK(stopped.status().code() == absl::StatusCode::kAborted);
  CHECK(pages == 1);

  // Nothing under the prefix: no page, and the current revision.
  absl::StatusOr<int64_t> empty =
      store->ListPages("zz", [](std::vector<KeyValue>&) { return absl::InternalError("a page"); });
  REQUIRE(empty.ok());
  CHECK(*empty == store->CurrentRevision());

  // A write made while the pages are delivered is not in them: they are all
  // read at the revision returned (the memory and SQLite stores hold their
  // lock, so there the write waits for the listing).
  std::thread writer;
  absl::StatusOr<int64_t> written;
  paged.clear();
  revision = store->ListPages("p", [&](std::vector<KeyValue>& page) {
    if (!writer.joinable()) {
      writer = std::thread([&] { written = store->Put("p/shared-prefix-00001-new", "late"); });
      absl::SleepFor(absl::Milliseconds(300));
    }
    for (KeyValue& kv : page) paged.push_back(std::move(kv));
    return absl::OkStatus();
  });
  writer.join();
  REQUIRE(revision.ok());
  REQUIRE(written.ok());
  CHECK(*revision < *written);
  CHECK(paged == list->kvs);
}

STORE_CONTRACT_TEST("store contract: transactions compare and set") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();

  // Create-if-absent wins once.
  Txn create;
  create.compares.push_back(Compare::Absent("lease/10.0.0.5"));
  create.success.push_back(Op::Put("lease/10.0.0.5", "vm-1"));
  create.success.push_back(Op::Put("vm/vm-1", "10.0.0.5"));
  create.failure.push_back(Op::Put("conflicts/10.0.0.5", "vm-1"));
  auto first = store->Txn(create);
  REQUIRE(first.ok());
  CHECK(first->succeeded);
  CHECK(first->revision == 1);
  // Both puts of one txn share one revision.
  CHECK(store->Get("vm/vm-1")->value().mod_revision == 1);

  auto second = store->Txn(create);
  REQUIRE(second.ok());
  CHECK_FALSE(second->succeeded);
  CHECK(second->revision == 2);  // the failure branch wrote
  CHECK(Value(*store, "conflicts/10.0.0.5") == "vm-1");
  CHECK(Value(*store, "lease/10.0.0.5") == "vm-1");

  // mod_revision CAS.
  CHECK(*store->CompareAndPut("lease/10.0.0.5", 1, "vm-2") == true);
  CHECK(*store->CompareAndPut("lease/10.0.0.5", 1, "vm-3") == false);
  CHECK(Value(*store, "lease/10.0.0.5") == "vm-2");
  const int64_t before = store->CurrentRevision();

  // A failed compare with no failure ops writes nothing, bumps nothing.
  Txn value_cas;
  value_cas.compares.push_back(Compare::ValueEquals("lease/10.0.0.5", "vm-1"));
  value_cas.success.push_back(Op::Put("lease/10.0.0.5", "vm-4"));
  auto failed = store->Txn(value_cas);
  REQUIRE(failed.ok());
  CHECK_FALSE(failed->succeeded);
  CHECK(failed->revision == before);
  CHECK(store->CurrentRevision() == before);

  value_cas.compares[0].value = "vm-2";
  CHECK(store->Txn(value_cas)->succeeded);
  CHECK(Value(*store, "lease/10.0.0.5") == "vm-4");

  // A value compare on a missing key is false; version/create compare 0.
  Txn on_missing;
  on_missing.compares.push_back(Compare::ValueEquals("nope", ""));
  CHECK_FALSE(store->Txn(on_missing)->succeeded);
  on_missing.compares = {Compare::VersionEquals("nope", 0),
                         Compare::CreateRevisionEquals("nope", 0)};
  CHECK(store->Txn(on_missing)->succeeded);
  on_missing.compares = {Compare::Present("nope")};
  CHECK_FALSE(store->Txn(on_missing)->succeeded);

  // Ordered compares and multiple predicates (all must hold).
  Compare greater = Compare::VersionEquals("lease/10.0.0.5", 2);
  greater.result = Compare::Result::kGreater;
  Txn multi;
  multi.compares = {greater, Compare::Present("vm/vm-1")};
  multi.success = {Op::DeletePrefix("vm/"), Op::Put("audit/1", "x")};
  auto deleted = store->Txn(multi);
  REQUIRE(deleted.ok());
  CHECK(deleted->succeeded);
  CHECK(store->List("vm/")->kvs.empty());
  CHECK(Value(*store, "audit/1") == "x");

  // Invalid requests are refused before anything happens.
  Txn duplicate;
  duplicate.success = {Op::Put("k", "1"), Op::Delete("k")};
  CHECK(store->Txn(duplicate).status().code() == absl::StatusCode::kInvalidArgument);
  Txn overlap;
  overlap.success = {Op::DeletePrefix("k"), Op::Put("k/1", "1")};
  CHECK(store->Txn(overlap).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(store->Get("k")->has_value());
}

STORE_CONTRACT_TEST("store contract: revisions are monotonic") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  int64_t last = store->CurrentRevision();
  for (int i = 0; i < 20; ++i) {
    const std::string key = "k/" + std::to_string(i % 4);
    int64_t now;
    if (i % 5 == 4) {
      REQUIRE(*store->Delete(key));
      now = store->CurrentRevision();
    } else {
      now = *store->Put(key, std::to_string(i));
    }
    CHECK(now == last + 1);
    CHECK(store->CurrentRevision() == now);
    CHECK(store->List("")->revision == now);
    last = now;
  }
}

STORE_CONTRACT_TEST("store contract: watch catches up, then follows live") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  REQUIRE(store->Put("cpt/a", "1").ok());    // rev 1
  REQUIRE(store->Put("other/x", "1").ok());  // rev 2, not watched
  Txn two;
  two.success = {Op::Put("cpt/b", "2"), Op::Put("cpt/c", "3")};
  REQUIRE(store->Txn(two).ok());  // rev 3

  WatchLog log;
  auto watch = store->Watch("cpt/", 1, log.Callback());
  REQUIRE(watch.ok());
  REQUIRE(log.WaitFor(2));
  REQUIRE(store->Put("cpt/a", "4").ok());    // rev 4
  REQUIRE(store->Put("other/y", "1").ok());  // rev 5, not watched
  REQUIRE(*store->Delete("cpt/b"));          // rev 6
  REQUIRE(log.WaitFor(4));

  std::vector<WatchResponse> got = log.Responses();
  REQUIRE(got.size() == 4);
  for (const WatchResponse& r : got) CHECK(r.status.ok());
  CHECK(got[0].revision == 1);
  REQUIRE(got[0].events.size() == 1);
  CHECK(got[0].events[0].type == EventType::kPut);
  CHECK(got[0].events[0].kv == KeyValue{"cpt/a", "1", 1, 1, 1});
  CHECK(got[1].revision == 3);
  REQUIRE(got[1].events.size() == 2);
  CHECK(got[1].events[0].kv.key == "cpt/b");
  CHECK(got[1].events[1].kv.key == "cpt/c");
  CHECK(got[2].revision == 4);
  CHECK(got[2].events[0].kv == KeyValue{"cpt/a", "4", 1, 4, 2});
  CHECK(got[3].revision == 6);
  REQUIRE(got[3].events.size() == 1);
  CHECK(got[3].events[0].type == EventType::kDelete);
  CHECK(got[3].events[0].kv.key == "cpt/b");
  CHECK(got[3].events[0].kv.mod_revision == 6);

  // from_revision 0 = only what happens after the call.
  WatchLog later;
  auto from_now = store->Watch("", 0, later.Callback());
  REQUIRE(from_now.ok());
  REQUIRE(store->Put("cpt/z", "9").ok());  // rev 7
  REQUIRE(later.WaitFor(1));
  REQUIRE(log.WaitFor(5));
  CHECK(later.Responses()[0].revision == 7);

  // After the handle is gone, nothing more arrives.
  watch->reset();
  REQUIRE(store->Put("cpt/after", "x").ok());  // rev 8
  REQUIRE(later.WaitFor(2));
  CHECK(log.Count() == 5);

  CHECK(store->Watch("", -1, log.Callback()).status().code() == absl::StatusCode::kInvalidArgument);
}

STORE_CONTRACT_TEST("store contract: watch callbacks may use the store") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  std::atomic<int> seen{0};
  absl::Mutex mu;
  std::string echoed;
  auto watch = store->Watch("in/", 0, [&](const WatchResponse& r) {
    // Not under the store's lock: reads and writes from here are fine.
    // (Catch2 assertions are not thread-safe; report through `seen`.)
    auto kv = store->Get(r.events[0].kv.key);
    if (!kv.ok() || !kv->has_value()) return;
    if (!store->Put("out/" + r.events[0].kv.key, (*kv)->value).ok()) return;
    seen.fetch_add(1);
  });
  REQUIRE(watch.ok());
  // The caller holding its own lock while writing must not deadlock either.
  {
    absl::MutexLock lock(&mu);
    REQUIRE(store->Put("in/1", "hello").ok());
  }
  REQUIRE(ppe::testing::WaitFor([&] { return seen.load() > 0; }, absl::Seconds(5)));
  CHECK(seen.load() == 1);
  CHECK(Value(*store, "out/in/1") == "hello");
}

STORE_CONTRACT_TEST("store contract: watch below the kept history is compacted") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  for (int i = 1; i <= 5; ++i) {
    REQUIRE(store->Put("k", std::to_string(i)).ok());
  }
  REQUIRE(store->Compact(3).ok());
  CHECK(store->Compact(99).code() == absl::StatusCode::kOutOfRange);

  WatchLog old;
  auto w1 = store->Watch("k", 2, old.Callback());
  REQUIRE(w1.ok());
  REQUIRE(old.WaitFor(1));
  WatchResponse r = old.Responses()[0];
  CHECK(IsCompacted(r.status));
  CHECK(r.compact_revision == 3);
  REQUIRE(store->Put("k", "6").ok());
  // Terminal: nothing after the error.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(old.Count() == 1);

  // The documented recovery: List, then watch from its revision + 1.
  WatchLog ok;
  auto w2 = store->Watch("k", 4, ok.Callback());
  REQUIRE(w2.ok());
  REQUIRE(ok.WaitFor(3));
  std::vector<WatchResponse> got = ok.Responses();
  CHECK(got[0].revision == 4);
  CHECK(got[1].revision == 5);
  CHECK(got[2].revision == 6);
  CHECK(got[2].events[0].kv.value == "6");
}

STORE_CONTRACT_TEST("store contract: history is bounded by automatic compaction") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make(/*history_revisions=*/8);
  for (int i = 0; i < 40; ++i) {
    REQUIRE(store->Put("k/" + std::to_string(i % 3), "v").ok());
  }
  WatchLog from_start;
  auto w1 = store->Watch("", 1, from_start.Callback());
  REQUIRE(w1.ok());
  REQUIRE(from_start.WaitFor(1));
  CHECK(IsCompacted(from_start.Responses()[0].status));

  // The last 8 revisions are always kept.
  WatchLog recent;
  auto w2 = store->Watch("", 40 - 7, recent.Callback());
  REQUIRE(w2.ok());
  REQUIRE(recent.WaitFor(8));
  CHECK(recent.Responses()[0].status.ok());
  CHECK(recent.Responses()[7].revision == 40);
}

STORE_CONTRACT_TEST("store contract: concurrent CAS has exactly one winner") {
  TestType impl;
  std::unique_ptr<RegistryStore> store = impl.Make();
  constexpr int kThreads = 6;
  constexpr int kRounds = 5;
  REQUIRE(store->Put("leader", "none").ok());
  for (int round = 0; round < kRounds; ++round) {
    const int64_t seen = store->Get("leader")->value().mod_revision;
    std::atomic<int> winners{0};
    absl::Barrier* start = new absl::Barrier(kThreads);  // deleted by last
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        if (start->Block()) delete start;
        auto won = store->CompareAndPut("leader", seen, "replica-" + std::to_string(t));
        if (won.ok() && *won) winners.fetch_add(1);
      });
    }
    for (std::thread& thread : threads) thread.join();
    CHECK(winners.load() == 1);
    CHECK(store->Get("leader")->value().mod_revision == seen + 1);
  }

  // Optimistic increments from several threads: none lost.
  REQUIRE(store->Put("counter", "0").ok());
  constexpr int kIncrements = 15;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements;) {
        auto kv = store->Get("counter");
        if (!kv.ok()) return;
        const int next = std::stoi((*kv)->value) + 1;
        auto won = store->CompareAndPut("counter", (*kv)->mod_revision, std::to_string(next));
        if (won.ok() && *won) ++i;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(Value(*store, "counter") == std::to_string(4 * kIncrements));
}

}  // namespace
}  // namespace ppe::store
