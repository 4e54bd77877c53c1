#include "ppe-service/store/sqlite_registry_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/store/txn_rules.h"

namespace ppe::store {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
  key        BLOB PRIMARY KEY,
  value      BLOB NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev    INTEGER NOT NULL,
  version    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
  revision   INTEGER NOT NULL,
  seq        INTEGER NOT NULL,
  type       INTEGER NOT NULL,
  key        BLOB NOT NULL,
  value      BLOB NOT NULL,
  create_rev INTEGER NOT NULL,
  version    INTEGER NOT NULL,
  PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', 1);
INSERT OR IGNORE INTO meta(name, value) VALUES ('revision', 0);
INSERT OR IGNORE INTO meta(name, value) VALUES ('compact_revision', 0);
)sql";

// Compaction runs when the kept history exceeds the window by a slack of up
// to 256 revisions, so its DELETE is amortised over many commits.
int64_t CompactionSlack(int64_t history_revisions) {
  return std::clamp<int64_t>(history_revisions / 16, 1, 256);
}

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  std::string message =
      absl::StrCat("sqlite ", std::string(what), ": ", sqlite3_errstr(rc),
                   db != nullptr ? absl::StrCat(" (", sqlite3_errmsg(db), ")") : std::string());
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    default:
      return absl::InternalError(message);
  }
}

// A zero-length blob needs a non-null pointer, or SQLite binds NULL.
int BindBlob(sqlite3_stmt* stmt, int index, absl::string_view bytes) {
  static const char kEmpty = 0;
  return sqlite3_bind_blob(stmt, index, bytes.empty() ? &kEmpty : bytes.data(),
                           static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
}

std::string ColumnBlob(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size <= 0) return std::string();
  return std::string(static_cast<const char*>(data), size);
}

// Resets a statement (and its bindings) when the scope ends.
class StmtScope {
 public:
  explicit StmtScope(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StmtScope() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StmtScope(const StmtScope&) = delete;
  StmtScope& operator=(const StmtScope&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

absl::StatusOr<int64_t> QueryMeta(sqlite3* db, const char* name) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = ?1", -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, "prepare meta read");
  sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
  rc = sqlite3_step(stmt);
  absl::StatusOr<int64_t> result;
  if (rc == SQLITE_ROW) {
    result = sqlite3_column_int64(stmt, 0);
  } else if (rc == SQLITE_DONE) {
    result = absl::DataLossError(absl::StrCat("meta row ", name, " missing"));
  } else {
    result = SqliteError(db, rc, "read meta");
  }
  sqlite3_finalize(stmt);
  return result;
}

absl::StatusOr<std::string> PragmaText(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, sql);
  rc = sqlite3_step(stmt);
  absl::StatusOr<std::string> result;
  if (rc == SQLITE_ROW) {
    const unsigned char* text = sqlite3_column_text(stmt, 0);
    result = text ? std::string(reinterpret_cast<const char*>(text)) : "";
  } else {
    result = SqliteError(db, rc, sql);
  }
  sqlite3_finalize(stmt);
  return result;
}

KeyValue ReadKv(sqlite3_stmt* stmt, int first_column, std::string key) {
  KeyValue kv;
  kv.key = std::move(key);
  kv.value = ColumnBlob(stmt, first_column);
  kv.create_revision = sqlite3_column_int64(stmt, first_column + 1);
  kv.mod_revision = sqlite3_column_int64(stmt, first_column + 2);
  kv.version = sqlite3_column_int64(stmt, first_column + 3);
  return kv;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteRegistryStore>> SqliteRegistryStore::Open(
    const std::string& path) {
  return Open(path, Options());
}

absl::StatusOr<std::unique_ptr<SqliteRegistryStore>> SqliteRegistryStore::Open(
    const std::string& path, Options options) {
  if (path.empty()) return absl::InvalidArgumentError("empty database path");
  const std::string lock_path = path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open lock file ", lock_path, ": ", std::strerror(errno)));
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "registry store ", path, " is already open in another process or instance (lock file ",
          lock_path, " is held)"));
    }
    return absl::UnavailableError(
        absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(err)));
  }

  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  auto fail = [&](absl::Status status) {
    sqlite3_close(db);
    ::close(lock_fd);
    return absl::Status(absl::StatusCode(status.code()),
                        absl::StrCat(path, ": ", status.message()));
  };
  if (rc != SQLITE_OK) return fail(SqliteError(db, rc, "open"));

  absl::StatusOr<std::string> mode = PragmaText(db, "PRAGMA journal_mode=WAL");
  if (!mode.ok()) return fail(mode.status());
  if (*mode != "wal") {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("cannot switch to WAL journal (mode is ", *mode, ")")));
  }
  char* err = nullptr;
  rc = sqlite3_exec(db, "PRAGMA synchronous=FULL", nullptr, nullptr, &err);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(db, absl::StrCat("BEGIN IMMEDIATE;", kSchema, "COMMIT;").c_str(), nullptr,
                      nullptr, &err);
  }
  if (rc != SQLITE_OK) {
    std::string what = err ? err : "";
    sqlite3_free(err);
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return fail(SqliteError(db, rc, absl::StrCat("schema setup: ", what)));
  }

  absl::StatusOr<int64_t> schema = QueryMeta(db, "schema_version");
  if (!schema.ok()) return fail(schema.status());
  if (*schema != kSchemaVersion) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("schema version ", *schema, " is not supported (this ", "build reads version ",
                     kSchemaVersion, ")")));
  }
  absl::StatusOr<int64_t> revision = QueryMeta(db, "revision");
  if (!revision.ok()) return fail(revision.status());
  absl::StatusOr<int64_t> compact = QueryMeta(db, "compact_revision");
  if (!compact.ok()) return fail(compact.status());

  std::unique_ptr<SqliteRegistryStore> store(
      new SqliteRegistryStore(path, options, lock_fd, db, *revision, *compact));
  absl::Status prepared;
  {
    absl::MutexLock lock(&store->mu_);
    prepared = store->Prepare();
  }
  if (!prepared.ok()) {
    return absl::Status(prepared.code(), absl::StrCat(path, ": ", prepared.message()));
  }
  return store;
}

SqliteRegistryStore::SqliteRegistryStore(std::string path, Options options, int lock_fd,
                                         sqlite3* db, int64_t revision, int64_t compact_revision)
    : path_(std::move(path)),
      options_(options),
      lock_fd_(lock_fd),
      db_(db),
      revision_(revision),
      compact_revision_(compact_revision),
      hub_(this, revision) {}

SqliteRegistryStore::~SqliteRegistryStore() {
  hub_.Stop();
  {
    absl::MutexLock lock(&mu_);
    for (sqlite3_stmt*& stmt : stmts_) {
      sqlite3_finalize(stmt);
      stmt = nullptr;
    }
  }
  sqlite3_close(db_);
  ::close(lock_fd_);  // releases the flock
}

absl::Status SqliteRegistryStore::Prepare() {
  static constexpr const char* kSql[kStmtCount] = {
      /*kBegin=*/"BEGIN IMMEDIATE",
      /*kCommit=*/"COMMIT",
      /*kRollback=*/"ROLLBACK",
      /*kGet=*/
      "SELECT value, create_rev, mod_rev, version FROM kv WHERE key = ?1",
      /*kListFrom=*/
      "SELECT key, value, create_rev, mod_rev, version FROM kv "
      "WHERE key >= ?1 ORDER BY key",
      /*kListRange=*/
      "SELECT key, value, create_rev, mod_rev, version FROM kv "
      "WHERE key >= ?1 AND key < ?2 ORDER BY key",
      /*kPut=*/
      "INSERT OR REPLACE INTO kv(key, value, create_rev, mod_rev, version) "
      "VALUES (?1, ?2, ?3, ?4, ?5)",
      /*kDelete=*/"DELETE FROM kv WHERE key = ?1",
      /*kHistoryInsert=*/
      "INSERT INTO history(revision, seq, type, key, value, create_rev, "
      "version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      /*kHistoryRead=*/
      "SELECT revision, type, key, value, create_rev, version FROM history "
      "WHERE revision >= ?1 AND revision <= ?2 ORDER BY revision, seq",
      /*kHistoryCompact=*/"DELETE FROM history WHERE revision <= ?1",
      /*kMetaPut=*/"INSERT OR REPLACE INTO meta(name, value) VALUES (?1, ?2)",
  };
  for (int i = 0; i < kStmtCount; ++i) {
    int rc = sqlite3_prepare_v3(db_, kSql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmts_[i], nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_, rc, kSql[i]);
  }
  return absl::OkStatus();
}

absl::Status SqliteRegistryStore::StepDone(Stmt stmt) {
  StmtScope scope(stmts_[stmt]);
  int rc = sqlite3_step(stmts_[stmt]);
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, sqlite3_sql(stmts_[stmt]));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<KeyValue>> SqliteRegistryStore::GetLocked(absl::string_view key) {
  sqlite3_stmt* stmt = stmts_[kGet];
  StmtScope scope(stmt);
  BindBlob(stmt, 1, key);
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return std::optional<KeyValue>();
  if (rc != SQLITE_ROW) return SqliteError(db_, rc, "get");
  return std::optional<KeyValue>(ReadKv(stmt, 0, std::string(key)));
}

absl::Status SqliteRegistryStore::ListLocked(absl::string_view prefix, size_t page_size,
                                             const PageCallback& on_page) {
  const std::string end = internal::PrefixRangeEnd(prefix);
  sqlite3_stmt* stmt = stmts_[end.empty() ? kListFrom : kListRange];
  StmtScope scope(stmt);
  BindBlob(stmt, 1, prefix);
  if (!end.empty()) BindBlob(stmt, 2, end);
  std::vector<KeyValue> page;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    page.push_back(ReadKv(stmt, 1, ColumnBlob(stmt, 0)));
    if (page.size() >= page_size) {
      if (absl::Status s = on_page(page); !s.ok()) return s;
      page.clear();
    }
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "list");
  if (!page.empty()) return on_page(page);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<KeyValue>> SqliteRegistryStore::Get(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  return GetLocked(key);
}

absl::StatusOr<RangeResult> SqliteRegistryStore::List(absl::string_view prefix) {
  absl::MutexLock lock(&mu_);
  RangeResult result;
  absl::Status listed = ListLocked(prefix, SIZE_MAX, [&](std::vector<KeyValue>& page) {
    result.kvs = std::move(page);
    return absl::OkStatus();
  });
  if (!listed.ok()) return listed;
  result.revision = revision_;
  return result;
}

absl::StatusOr<int64_t> SqliteRegistryStore::ListPages(absl::string_view prefix,
                                                       const PageCallback& on_page) {
  absl::MutexLock lock(&mu_);
  // One statement under the lock: no write comes between the pages.
  absl::Status listed = ListLocked(prefix, internal::kListPageKeys, on_page);
  if (!listed.ok()) return listed;
  return revision_;
}

absl::Status SqliteRegistryStore::RecordEvent(int64_t revision, int64_t seq, EventType type,
                                              const KeyValue& kv) {
  sqlite3_stmt* stmt = stmts_[kHistoryInsert];
  {
    sqlite3_bind_int64(stmt, 1, revision);
    sqlite3_bind_int64(stmt, 2, seq);
    sqlite3_bind_int(stmt, 3, type == EventType::kPut ? 0 : 1);
    BindBlob(stmt, 4, kv.key);
    BindBlob(stmt, 5, kv.value);
    sqlite3_bind_int64(stmt, 6, kv.create_revision);
    sqlite3_bind_int64(stmt, 7, kv.version);
  }
  return StepDone(kHistoryInsert);
}

absl::Status SqliteRegistryStore::PutMeta(absl::string_view name, int64_t value) {
  sqlite3_stmt* stmt = stmts_[kMetaPut];
  sqlite3_bind_text(stmt, 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt, 2, value);
  return StepDone(kMetaPut);
}

absl::Status SqliteRegistryStore::CompactInTxn(int64_t revision) {
  sqlite3_bind_int64(stmts_[kHistoryCompact], 1, revision);
  absl::Status status = StepDone(kHistoryCompact);
  if (!status.ok()) return status;
  return PutMeta("compact_revision", revision);
}

absl::Status SqliteRegistryStore::ApplyLocked(const ppe::store::Txn& txn, TxnResult& result,
                                              bool& changed) {
  result.succeeded = true;
  for (const Compare& c : txn.compares) {
    PPE_ASSIGN_OR_RETURN(std::optional<KeyValue> current, GetLocked(c.key));
    if (!internal::EvaluateCompare(c, current)) {
      result.succeeded = false;
      break;
    }
  }
  const int64_t revision = revision_ + 1;
  int64_t seq = 0;
  auto delete_key = [&](const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::Status {
    BindBlob(stmts_[kDelete], 1, key);
    absl::Status status = StepDone(kDelete);
    if (!status.ok()) return status;
    KeyValue tombstone;
    tombstone.key = key;
    tombstone.mod_revision = revision;
    changed = true;
    return RecordEvent(revision, seq++, EventType::kDelete, tombstone);
  };
  for (const Op& op : result.succeeded ? txn.success : txn.failure) {
    switch (op.type) {
      case Op::Type::kPut: {
        PPE_ASSIGN_OR_RETURN(std::optional<KeyValue> current, GetLocked(op.key));
        KeyValue kv;
        kv.key = op.key;
        kv.value = op.value;
        kv.create_revision = current.has_value() ? current->create_revision : revision;
        kv.mod_revision = revision;
        kv.version = current.has_value() ? current->version + 1 : 1;
        sqlite3_stmt* stmt = stmts_[kPut];
        BindBlob(stmt, 1, kv.key);
        BindBlob(stmt, 2, kv.value);
        sqlite3_bind_int64(stmt, 3, kv.create_revision);
        sqlite3_bind_int64(stmt, 4, kv.mod_revision);
        sqlite3_bind_int64(stmt, 5, kv.version);
        absl::Status status = StepDone(kPut);
        if (!status.ok()) return status;
        changed = true;
        status = RecordEvent(revision, seq++, EventType::kPut, kv);
        if (!status.ok()) return status;
        break;
      }
      case Op::Type::kDelete: {
        PPE_ASSIGN_OR_RETURN(std::optional<KeyValue> current, GetLocked(op.key));
        if (!current.has_value()) break;
        absl::Status status = delete_key(op.key);
        if (!status.ok()) return status;
        break;
      }
      case Op::Type::kDeletePrefix: {
        std::vector<KeyValue> doomed;
        absl::Status listed = ListLocked(op.key, SIZE_MAX, [&](std::vector<KeyValue>& page) {
          doomed = std::move(page);
          return absl::OkStatus();
        });
        if (!listed.ok()) return listed;
        for (const KeyValue& kv : doomed) {
          absl::Status status = delete_key(kv.key);
          if (!status.ok()) return status;
        }
        break;
      }
    }
  }
  if (!changed) return absl::OkStatus();
  absl::Status status = PutMeta("revision", revision);
  if (!status.ok()) return status;
  if (revision - compact_revision_ >
      options_.history_revisions + CompactionSlack(options_.history_revisions)) {
    status = CompactInTxn(revision - options_.history_revisions);
  }
  return status;
}

absl::StatusOr<TxnResult> SqliteRegistryStore::Txn(const ppe::store::Txn& txn) {
  absl::Status valid = internal::ValidateTxn(txn);
  if (!valid.ok()) return valid;
  TxnResult result;
  int64_t head;
  {
    absl::MutexLock lock(&mu_);
    absl::Status status = StepDone(kBegin);
    if (!status.ok()) return status;
    bool changed = false;
    status = ApplyLocked(txn, result, changed);
    if (status.ok()) status = StepDone(changed ? kCommit : kRollback);
    if (!status.ok()) {
      if (!sqlite3_get_autocommit(db_)) StepDone(kRollback).IgnoreError();
      return status;
    }
    if (changed) {
      ++revision_;
      if (revision_ - compact_revision_ >
          options_.history_revisions + CompactionSlack(options_.history_revisions)) {
        compact_revision_ = revision_ - options_.history_revisions;
      }
    }
    result.revision = revision_;
    head = revision_;
  }
  hub_.Notify(head);
  return result;
}

absl::StatusOr<std::unique_ptr<WatchHandle>> SqliteRegistryStore::Watch(absl::string_view prefix,
                                                                        int64_t from_revision,
                                                                        WatchCallback callback) {
  return hub_.Add(prefix, from_revision, std::move(callback));
}

absl::Status SqliteRegistryStore::Compact(int64_t revision) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<bool> needed = internal::CompactionNeeded(revision, revision_, compact_revision_);
  if (!needed.ok() || !*needed) return needed.status();
  absl::Status status = StepDone(kBegin);
  if (!status.ok()) return status;
  status = CompactInTxn(revision);
  if (status.ok()) status = StepDone(kCommit);
  if (!status.ok()) {
    if (!sqlite3_get_autocommit(db_)) StepDone(kRollback).IgnoreError();
    return status;
  }
  compact_revision_ = revision;
  return absl::OkStatus();
}

int64_t SqliteRegistryStore::CurrentRevision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

absl::StatusOr<internal::EventRead> SqliteRegistryStore::ReadEvents(absl::string_view prefix,
                                                                    int64_t from, int64_t to) {
  absl::MutexLock lock(&mu_);
  internal::EventRead read;
  if (from <= compact_revision_) {
    read.compact_revision = compact_revision_;
    return read;
  }
  sqlite3_stmt* stmt = stmts_[kHistoryRead];
  StmtScope scope(stmt);
  sqlite3_bind_int64(stmt, 1, from);
  sqlite3_bind_int64(stmt, 2, to);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    std::string key = ColumnBlob(stmt, 2);
    if (!absl::StartsWith(key, prefix)) continue;
    const int64_t revision = sqlite3_column_int64(stmt, 0);
    WatchEvent event;
    event.type = sqlite3_column_int(stmt, 1) == 0 ? EventType::kPut : EventType::kDelete;
    event.kv.key = std::move(key);
    event.kv.value = ColumnBlob(stmt, 3);
    event.kv.create_revision = sqlite3_column_int64(stmt, 4);
    event.kv.mod_revision = revision;
    event.kv.version = sqlite3_column_int64(stmt, 5);
    read.events.emplace_back(revision, std::move(event));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, rc, "read history");
  return read;
}

}  // namespace ppe::store
