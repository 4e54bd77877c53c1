#pragma once

// Rules shared by the store implementations: request validation, compare
// evaluation, prefix ranges and the "compacted" status. Internal to
// ppe-service/store.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe-service/store/registry_store.h"

namespace ppe::store::internal {

// INVALID_ARGUMENT for empty keys/prefixes or a key written twice in a branch.
absl::Status ValidateTxn(const Txn& txn);

// Evaluates one compare against the key's current state (nullopt = absent).
bool EvaluateCompare(const Compare& compare, const std::optional<KeyValue>& current);

// The smallest key greater than every key starting with `prefix`, or "" when
// there is none (prefix empty or all 0xff): etcd's GetPrefixRangeEnd.
std::string PrefixRangeEnd(absl::string_view prefix);

absl::Status CompactedError(int64_t compact_revision);

// The start of Compact(revision) in a store that counts its own revisions
// (memory, SQLite): OUT_OF_RANGE, in etcd's words, for a revision beyond
// `current`; false when `revision` is at or below `compacted` (nothing to do);
// true when history up to `revision` is to be dropped.
absl::StatusOr<bool> CompactionNeeded(int64_t revision, int64_t current, int64_t compacted);
// Keys per page of ListPages in the memory and SQLite stores.
inline constexpr size_t kListPageKeys = 1000;

}  // namespace ppe::store::internal
