#pragma once

// Delivers watch events for a store implementation that keeps its own history
// (MemoryRegistryStore, SqliteRegistryStore). One dispatcher thread per store
// reads each watcher's pending revisions from the EventSource and calls the
// callbacks with no store or hub lock held. Internal to ppe-service/store.

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/store/registry_store.h"

namespace ppe::store::internal {

// A read of the kept history.
struct EventRead {
  // Set (> 0) when `from` is at or below the compact revision; events empty.
  int64_t compact_revision = 0;
  // (revision, event) in revision order, then in write order within one.
  std::vector<std::pair<int64_t, WatchEvent>> events;
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  // Events with from <= revision <= to whose key starts with `prefix`.
  virtual absl::StatusOr<EventRead> ReadEvents(absl::string_view prefix, int64_t from,
                                               int64_t to) = 0;
};

class WatchHub {
 public:
  // `source` must outlive Stop(). `head` is the store's current revision.
  WatchHub(EventSource* source, int64_t head);
  ~WatchHub();  // calls Stop()

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Registers a watcher; from_revision 0 = head + 1. INVALID_ARGUMENT for a
  // negative revision or no callback (the stores' Watch returns this as is).
  absl::StatusOr<std::unique_ptr<WatchHandle>> Add(absl::string_view prefix, int64_t from_revision,
                                                   WatchCallback callback);

  // Called after each commit with the new current revision.
  void Notify(int64_t head);

  // Sends CANCELLED to the remaining watchers and joins the thread. The store
  // calls it before tearing down its EventSource.
  void Stop();

  struct Watcher;
  struct Core;

 private:
  std::shared_ptr<Core> core_;
  std::thread thread_;
};

}  // namespace ppe::store::internal
