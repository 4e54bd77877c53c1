#pragma once

// The durable key-value store under the registry, shaped like etcd v3's KV and
// Watch services so that an etcd implementation fits without change.
//
// Data model (see docs/store.md):
//  - keys and values are byte strings (std::string may hold any bytes); keys
//    are non-empty and ordered bytewise (unsigned), like etcd;
//  - every transaction that changes something bumps one store-wide revision
//    (int64, 0 for an empty store, 1 after the first write); all changes of
//    one transaction share that revision;
//  - each live key carries create_revision, mod_revision and version (number
//    of puts since it was created; a delete resets it), as in etcd's mvccpb.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::store {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// Result of List: the matching keys, sorted, and the store revision the read
// was taken at (watch from revision + 1 to follow it without a gap).
struct RangeResult {
  std::vector<KeyValue> kvs;
  int64_t revision = 0;
};

// One predicate of a transaction, as etcd's Compare. A missing key has
// version, create_revision and mod_revision 0; a value compare on a missing
// key is false.
struct Compare {
  enum class Target { kValue, kVersion, kCreateRevision, kModRevision };
  enum class Result { kEqual, kNotEqual, kGreater, kLess };

  std::string key;
  Target target = Target::kValue;
  Result result = Result::kEqual;
  std::string value;   // for kValue
  int64_t number = 0;  // for the other targets

  static Compare ValueEquals(absl::string_view key, absl::string_view value);
  static Compare ModRevisionEquals(absl::string_view key, int64_t revision);
  static Compare CreateRevisionEquals(absl::string_view key, int64_t revision);
  static Compare VersionEquals(absl::string_view key, int64_t version);
  static Compare Absent(absl::string_view key);   // create_revision == 0
  static Compare Present(absl::string_view key);  // create_revision > 0
};

// One write of a transaction. Within one branch a key may be written at most
// once (etcd's "duplicate key given in txn request"), else INVALID_ARGUMENT.
struct Op {
  enum class Type { kPut, kDelete, kDeletePrefix };

  Type type = Type::kPut;
  std::string key;  // the prefix for kDeletePrefix (must be non-empty)
  std::string value;

  static Op Put(absl::string_view key, absl::string_view value);
  static Op Delete(absl::string_view key);
  static Op DeletePrefix(absl::string_view prefix);
};

// If every compare holds, apply `success`, else apply `failure`; atomically.
struct Txn {
  std::vector<Compare> compares{};
  std::vector<Op> success{};
  std::vector<Op> failure{};
};

struct TxnResult {
  bool succeeded = false;
  // Store revision after the transaction: the new revision if it changed
  // something, else the revision it was evaluated at.
  int64_t revision = 0;
};

enum class EventType { kPut, kDelete };

// One change. For a delete, kv holds the key and mod_revision = the delete's
// revision; value, create_revision and version are empty/0 (as etcd).
struct WatchEvent {
  EventType type = EventType::kPut;
  KeyValue kv;

  friend bool operator==(const WatchEvent&, const WatchEvent&) = default;
};

// What a watch callback receives: either all events of one revision that match
// the prefix (status OK), or a terminal error after which no more calls come:
//  - OUT_OF_RANGE "compacted": the requested revision is older than the kept
//    history; compact_revision is set. Re-read with List and watch again from
//    its revision + 1.
//  - CANCELLED: the store is shutting down.
//  - anything else: the store failed to read its history.
struct WatchResponse {
  absl::Status status;
  int64_t revision = 0;
  int64_t compact_revision = 0;
  std::vector<WatchEvent> events;
};

using WatchCallback = std::function<void(const WatchResponse&)>;

// Cancels the watch on destruction. Once the destructor returns, the callback
// is not running and will not be called again (unless the destructor runs on
// the callback's own thread, i.e. inside the callback, where it only marks the
// watch cancelled). A handle may outlive its store.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

class RegistryStore {
 public:
  virtual ~RegistryStore() = default;

  virtual absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) = 0;

  // All keys starting with `prefix` ("" = every key), sorted bytewise.
  virtual absl::StatusOr<RangeResult> List(absl::string_view prefix) = 0;

  // One page of ListPages: consecutive keys, sorted; the callee may move from it.
  using PageCallback = std::function<absl::Status(std::vector<KeyValue>& page)>;

  // The keys List(prefix) returns, read at one revision, handed to `on_page`
  // in key order a page at a time (never an empty page), so that a caller
  // building its own index from them never holds the whole list. Returns the
  // revision the pages were read at. `on_page` runs on the calling thread; a
  // non-OK status from it stops the listing and is returned. It must not call
  // this store (the memory and SQLite stores hold their lock meanwhile).
  virtual absl::StatusOr<int64_t> ListPages(absl::string_view prefix,
                                            const PageCallback& on_page) = 0;

  // Atomic compare-then-write. When it returns OK and changed something, the
  // change is durable as far as the implementation promises (SQLite: fsynced).
  virtual absl::StatusOr<TxnResult> Txn(const Txn& txn) = 0;

  // Delivers, on a store-owned thread and never under a caller's lock, the
  // events under `prefix` from `from_revision` on, one call per revision, in
  // revision order: first the kept history (catch-up), then live changes.
  // from_revision 0 means "changes after now". Errors in the request itself
  // (negative revision) are returned here; compaction arrives as a callback.
  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(absl::string_view prefix,
                                                             int64_t from_revision,
                                                             WatchCallback callback) = 0;

  // Drops the watch history at and below `revision` (etcd's Compact). Watches
  // from a revision <= the compact revision then report "compacted". Current
  // keys are unaffected. Implementations also compact on their own to keep a
  // bounded window. OUT_OF_RANGE if revision > CurrentRevision().
  virtual absl::Status Compact(int64_t revision) = 0;

  virtual int64_t CurrentRevision() = 0;

  // Convenience wrappers over Txn.
  // Unconditional put; returns the new revision.
  absl::StatusOr<int64_t> Put(absl::string_view key, absl::string_view value);
  // Deletes the key; returns whether it existed.
  absl::StatusOr<bool> Delete(absl::string_view key);
  // Puts only if the key's mod_revision equals `expected_mod_revision` (0 =
  // only if absent); returns whether it was written.
  absl::StatusOr<bool> CompareAndPut(absl::string_view key, int64_t expected_mod_revision,
                                     absl::string_view value);
};

// True for the status a watch reports when its start revision was compacted.
bool IsCompacted(const absl::Status& status);

}  // namespace ppe::store
