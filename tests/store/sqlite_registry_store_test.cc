// SQLite-specific behaviour: persistence across reopen, the single-opener
// lock, schema versioning and durability under SIGKILL.

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "ppe-service/store/sqlite_registry_store.h"
#include "tests/store/store_test_util.h"

namespace ppe::store {
namespace {

using testing::TempDir;
using testing::WatchLog;

std::unique_ptr<SqliteRegistryStore> MustOpen(const std::string& path) {
  auto store = SqliteRegistryStore::Open(path);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(*store);
}

TEST_CASE("store sqlite: reopen keeps data, revision and watch history", "[store][sqlite]") {
  TempDir dir;
  const std::string path = dir.path() + "/registry.db";
  {
    auto store = MustOpen(path);
    REQUIRE(store->Put("cpt/a", "1").ok());
    REQUIRE(store->Put("cpt/b", "2").ok());
    REQUIRE(*store->Delete("cpt/a"));
    REQUIRE(store->Put("cpt/b", "3").ok());
    CHECK(store->CurrentRevision() == 4);
  }
  auto store = MustOpen(path);
  CHECK(store->CurrentRevision() == 4);
  CHECK_FALSE(store->Get("cpt/a")->has_value());
  auto b = store->Get("cpt/b");
  REQUIRE(b->has_value());
  CHECK((*b)->value == "3");
  CHECK((*b)->create_revision == 2);
  CHECK((*b)->version == 2);
  CHECK(*store->Put("cpt/c", "4") == 5);

  // The history survived too: a watcher can catch up across the restart.
  WatchLog log;
  auto watch = store->Watch("cpt/", 3, log.Callback());
  REQUIRE(watch.ok());
  REQUIRE(log.WaitFor(3));
  auto got = log.Responses();
  CHECK(got[0].events[0].type == EventType::kDelete);
  CHECK(got[1].events[0].kv.value == "3");
  CHECK(got[2].revision == 5);
}

TEST_CASE("store sqlite: a second opener of the same file is refused", "[store][sqlite]") {
  TempDir dir;
  const std::string path = dir.path() + "/registry.db";
  {
    auto first = MustOpen(path);
    auto second = SqliteRegistryStore::Open(path);
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(second.status().message()), Catch::Contains(path));

    // Another process is refused the same way.
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      auto other = SqliteRegistryStore::Open(path);
      _exit(!other.ok() && other.status().code() == absl::StatusCode::kFailedPrecondition ? 0 : 1);
    }
    int wstatus = 0;
    REQUIRE(waitpid(child, &wstatus, 0) == child);
    CHECK(WIFEXITED(wstatus));
    CHECK(WEXITSTATUS(wstatus) == 0);
  }
  // Closing releases the lock.
  CHECK(SqliteRegistryStore::Open(path).ok());
}

TEST_CASE("store sqlite: a database from a newer schema is refused", "[store][sqlite]") {
  TempDir dir;
  const std::string path = dir.path() + "/registry.db";
  { MustOpen(path); }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "UPDATE meta SET value = 99 "
                       "WHERE name = 'schema_version'",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteRegistryStore::Open(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(store.status().message()), Catch::Contains("schema version 99"));
}

// The child commits as fast as it can and reports each acknowledged commit
// ("<revision> <key>\n") on a pipe; it is killed with SIGKILL mid-stream.
// Every acknowledged key must be in the reopened database.
TEST_CASE("store sqlite: acknowledged commits survive SIGKILL", "[store][sqlite][crash]") {
  TempDir dir;
  const std::string path = dir.path() + "/registry.db";
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(fds[0]);
    auto store = SqliteRegistryStore::Open(path);
    if (!store.ok()) _exit(2);
    for (int i = 0;; ++i) {
      const std::string key = "crash/" + std::to_string(i);
      ppe::store::Txn txn;
      txn.success = {Op::Put(key, "value-" + std::to_string(i)), Op::Put("crash-last", key)};
      auto result = (*store)->Txn(txn);
      if (!result.ok()) _exit(3);
      const std::string line = std::to_string(result->revision) + " " + key + "\n";
      if (write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
        _exit(4);
      }
    }
  }
  close(fds[1]);
  // Let it run until a few hundred commits were acknowledged (or 1.5 s).
  std::string acked;
  char buffer[4096];
  const absl::Time deadline = absl::Now() + absl::Milliseconds(1500);
  while (absl::Now() < deadline && std::count(acked.begin(), acked.end(), '\n') < 300) {
    ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    acked.append(buffer, n);
  }
  REQUIRE(kill(child, SIGKILL) == 0);
  int wstatus = 0;
  REQUIRE(waitpid(child, &wstatus, 0) == child);
  CHECK(WIFSIGNALED(wstatus));
  // Drain what it acknowledged before dying.
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) acked.append(buffer, n);
  close(fds[0]);

  std::map<std::string, int64_t> expected;
  std::istringstream lines(acked);
  int64_t revision;
  std::string key;
  int64_t max_revision = 0;
  while (lines >> revision >> key) {
    expected[key] = revision;
    max_revision = std::max(max_revision, revision);
  }
  INFO("acknowledged commits: " << expected.size());
  REQUIRE(expected.size() >= 10);

  auto store = MustOpen(path);  // the dead child's lock is gone
  CHECK(store->CurrentRevision() >= max_revision);
  int missing = 0;
  for (const auto& [k, rev] : expected) {
    auto kv = store->Get(k);
    REQUIRE(kv.ok());
    if (!kv->has_value() || (*kv)->mod_revision != rev) ++missing;
  }
  CHECK(missing == 0);
  // Nothing half-applied: the txn's two puts are both there or both not.
  auto last = store->Get("crash-last");
  REQUIRE(last->has_value());
  auto last_key = store->Get((*last)->value);
  REQUIRE(last_key->has_value());
  CHECK((*last_key)->mod_revision == (*last)->mod_revision);
}

}  // namespace
}  // namespace ppe::store
