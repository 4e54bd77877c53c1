#pragma once

// RegistryStore held in memory: the in-memory mode of ppe-service and the
// reference implementation for the contract tests. Nothing survives the
// process.

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/store/registry_store.h"
#include "ppe-service/store/watch_hub.h"

namespace ppe::store {

class MemoryRegistryStore final : public RegistryStore, private internal::EventSource {
 public:
  struct Options {
    // Revisions of watch history kept; older ones are compacted away.
    int64_t history_revisions = 10000;
  };

  MemoryRegistryStore();
  explicit MemoryRegistryStore(Options options);
  ~MemoryRegistryStore() override;

  MemoryRegistryStore(const MemoryRegistryStore&) = delete;
  MemoryRegistryStore& operator=(const MemoryRegistryStore&) = delete;

  absl::StatusOr<std::optional<KeyValue>> Get(absl::string_view key) override;
  absl::StatusOr<RangeResult> List(absl::string_view prefix) override;
  absl::StatusOr<int64_t> ListPages(absl::string_view prefix, const PageCallback& on_page) override;
  absl::StatusOr<TxnResult> Txn(const ppe::store::Txn& txn) override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(absl::string_view prefix,
                                                     int64_t from_revision,
                                                     WatchCallback callback) override;
  absl::Status Compact(int64_t revision) override;
  int64_t CurrentRevision() override;

 private:
  struct HistoryEntry {
    int64_t revision;
    WatchEvent event;
  };

  absl::StatusOr<internal::EventRead> ReadEvents(absl::string_view prefix, int64_t from,
                                                 int64_t to) override;
  void ApplyOps(const std::vector<Op>& ops, int64_t revision, bool& changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CompactLocked(int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  std::map<std::string, KeyValue, std::less<>> kvs_ ABSL_GUARDED_BY(mu_);
  std::deque<HistoryEntry> history_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t compact_revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Declared last: stopped first, while the members above are alive.
  internal::WatchHub hub_;
};

}  // namespace ppe::store
