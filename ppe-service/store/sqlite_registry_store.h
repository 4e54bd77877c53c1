#pragma once

// RegistryStore in one embedded SQLite database file: the durable default of
// a single ppe-service process.
//
//  - WAL journal, synchronous=FULL: when Txn returns OK the commit is fsynced
//    and survives kill -9 or power loss.
//  - One process per database: Open takes an exclusive flock on "<path>.lock"
//    and fails with FAILED_PRECONDITION while another opener holds it (also a
//    second Open in the same process).
//  - Watch history lives in the same database (table `history`), written in
//    the same transaction as the change, so watches can catch up across
//    restarts; it is compacted to a bounded window of revisions.
//  - Schema versioned in table `meta`.
//
// All statements run on one connection under one mutex; a read waits for an
// in-flight commit's fsync.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/store/registry_store.h"
#include "ppe-service/store/watch_hub.h"

namespace ppe::store {

class SqliteRegistryStore final : public RegistryStore, private internal::EventSource {
 public:
  static constexpr int kSchemaVersion = 1;

  struct Options {
    // Revisions of watch history kept; older ones are compacted away.
    int64_t history_revisions = 10000;
  };

  static absl::StatusOr<std::unique_ptr<SqliteRegistryStore>> Open(const std::string& path);
  static absl::StatusOr<std::unique_ptr<SqliteRegistryStore>> Open(const std::string& path,
                                                                   Options options);

  ~SqliteRegistryStore() override;

  SqliteRegistryStore(const SqliteRegistryStore&) = delete;
  SqliteRegistryStore& operator=(const SqliteRegistryStore&) = delete;

  absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) override;
  absl::StatusOr<RangeResult> List(absl::string_view prefix) override;
  absl::StatusOr<int64_t> ListPages(absl::string_view prefix, const PageCallback& on_page) override;
  absl::StatusOr<TxnResult> Txn(const ppe::store::Txn& txn) override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(absl::string_view prefix,
                                                     int64_t from_revision,
                                                     WatchCallback callback) override;
  absl::Status Compact(int64_t revision) override;
  int64_t CurrentRevision() override;

  const std::string& path() const { return path_; }

 private:
  // Prepared statements, reused for the life of the connection.
  enum Stmt {
    kBegin,
    kCommit,
    kRollback,
    kGet,
    kListFrom,
    kListRange,
    kPut,
    kDelete,
    kHistoryInsert,
    kHistoryRead,
    kHistoryCompact,
    kMetaPut,
    kStmtCount,
  };

  SqliteRegistryStore(std::string path, Options options, int lock_fd, sqlite3* db, int64_t revision,
                      int64_t compact_revision);

  absl::Status Prepare() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<KeyValue>> GetLocked(absl::string_view key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Steps one SELECT over the prefix, calling `on_page` every `page_size` rows.
  absl::Status ListLocked(absl::string_view prefix, size_t page_size, const PageCallback& on_page)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the txn inside BEGIN IMMEDIATE ... (caller commits or rolls back).
  absl::Status ApplyLocked(const ppe::store::Txn& txn, TxnResult& result, bool& changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecordEvent(int64_t revision, int64_t seq, EventType type, const KeyValue& kv)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutMeta(absl::string_view name, int64_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CompactInTxn(int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StepDone(Stmt stmt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<internal::EventRead> ReadEvents(absl::string_view prefix, int64_t from,
                                                 int64_t to) override;

  const std::string path_;
  const Options options_;
  const int lock_fd_;
  absl::Mutex mu_;
  sqlite3* const db_;  // all use under mu_
  sqlite3_stmt* stmts_[kStmtCount] ABSL_GUARDED_BY(mu_) = {};
  int64_t revision_ ABSL_GUARDED_BY(mu_);
  int64_t compact_revision_ ABSL_GUARDED_BY(mu_);
  // Declared last: stopped first, while the members above are alive.
  internal::WatchHub hub_;
};

}  // namespace ppe::store
