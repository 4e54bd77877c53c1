#include "ppe-service/store/memory_registry_store.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/store/txn_rules.h"

namespace ppe::store {

MemoryRegistryStore::MemoryRegistryStore() : MemoryRegistryStore(Options()) {}

MemoryRegistryStore::MemoryRegistryStore(Options options) : options_(options), hub_(this, 0) {}

MemoryRegistryStore::~MemoryRegistryStore() { hub_.Stop(); }

absl::StatusOr<std::optional<KeyValue>> MemoryRegistryStore::Get(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(it->second);
}

absl::StatusOr<RangeResult> MemoryRegistryStore::List(absl::string_view prefix) {
  absl::MutexLock lock(&mu_);
  RangeResult result;
  result.revision = revision_;
  for (auto it = kvs_.lower_bound(prefix); it != kvs_.end() && absl::StartsWith(it->first, prefix);
       ++it) {
    result.kvs.push_back(it->second);
  }
  return result;
}

absl::StatusOr<int64_t> MemoryRegistryStore::ListPages(absl::string_view prefix,
                                                       const PageCallback& on_page) {
  absl::MutexLock lock(&mu_);  // no write comes between the pages
  std::vector<KeyValue> page;
  for (auto it = kvs_.lower_bound(prefix); it != kvs_.end() && absl::StartsWith(it->first, prefix);
       ++it) {
    page.push_back(it->second);
    if (page.size() >= internal::kListPageKeys) {
      if (absl::Status s = on_page(page); !s.ok()) return s;
      page.clear();
    }
  }
  if (!page.empty()) {
    if (absl::Status s = on_page(page); !s.ok()) return s;
  }
  return revision_;
}

void MemoryRegistryStore::ApplyOps(const std::vector<Op>& ops, int64_t revision, bool& changed) {
  auto record_delete = [&](const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    WatchEvent event;
    event.type = EventType::kDelete;
    event.kv.key = key;
    event.kv.mod_revision = revision;
    history_.push_back({revision, std::move(event)});
    changed = true;
  };
  for (const Op& op : ops) {
    switch (op.type) {
      case Op::Type::kPut: {
        KeyValue& kv = kvs_[op.key];
        if (kv.create_revision == 0) {
          kv.key = op.key;
          kv.create_revision = revision;
        }
        kv.value = op.value;
        kv.mod_revision = revision;
        kv.version += 1;
        history_.push_back({revision, WatchEvent{EventType::kPut, kv}});
        changed = true;
        break;
      }
      case Op::Type::kDelete: {
        auto it = kvs_.find(op.key);
        if (it == kvs_.end()) break;
        kvs_.erase(it);
        record_delete(op.key);
        break;
      }
      case Op::Type::kDeletePrefix: {
        auto it = kvs_.lower_bound(op.key);
        while (it != kvs_.end() && absl::StartsWith(it->first, op.key)) {
          record_delete(it->first);
          it = kvs_.erase(it);
        }
        break;
      }
    }
  }
}

absl::StatusOr<TxnResult> MemoryRegistryStore::Txn(const ppe::store::Txn& txn) {
  absl::Status valid = internal::ValidateTxn(txn);
  if (!valid.ok()) return valid;
  int64_t head;
  TxnResult result;
  {
    absl::MutexLock lock(&mu_);
    result.succeeded = true;
    for (const Compare& c : txn.compares) {
      auto it = kvs_.find(c.key);
      std::optional<KeyValue> current;
      if (it != kvs_.end()) current = it->second;
      if (!internal::EvaluateCompare(c, current)) {
        result.succeeded = false;
        break;
      }
    }
    const std::vector<Op>& ops = result.succeeded ? txn.success : txn.failure;
    bool changed = false;
    ApplyOps(ops, revision_ + 1, changed);
    if (changed) {
      ++revision_;
      if (revision_ - compact_revision_ > options_.history_revisions) {
        CompactLocked(revision_ - options_.history_revisions);
      }
    }
    result.revision = revision_;
    head = revision_;
  }
  hub_.Notify(head);
  return result;
}

absl::StatusOr<std::unique_ptr<WatchHandle>> MemoryRegistryStore::Watch(absl::string_view prefix,
                                                                        int64_t from_revision,
                                                                        WatchCallback callback) {
  return hub_.Add(prefix, from_revision, std::move(callback));
}

void MemoryRegistryStore::CompactLocked(int64_t revision) {
  if (revision <= compact_revision_) return;
  while (!history_.empty() && history_.front().revision <= revision) {
    history_.pop_front();
  }
  compact_revision_ = revision;
}

absl::Status MemoryRegistryStore::Compact(int64_t revision) {
  absl::MutexLock lock(&mu_);
  PPE_ASSIGN_OR_RETURN(bool needed,
                       internal::CompactionNeeded(revision, revision_, compact_revision_));
  if (needed) CompactLocked(revision);
  return absl::OkStatus();
}

int64_t MemoryRegistryStore::CurrentRevision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

absl::StatusOr<internal::EventRead> MemoryRegistryStore::ReadEvents(absl::string_view prefix,
                                                                    int64_t from, int64_t to) {
  absl::MutexLock lock(&mu_);
  internal::EventRead read;
  if (from <= compact_revision_) {
    read.compact_revision = compact_revision_;
    return read;
  }
  // history_ is sorted by revision; binary search the first entry >= from.
  auto it = std::lower_bound(history_.begin(), history_.end(), from,
                             [](const HistoryEntry& e, int64_t rev) { return e.revision < rev; });
  for (; it != history_.end() && it->revision <= to; ++it) {
    if (absl::StartsWith(it->event.kv.key, prefix)) {
      read.events.emplace_back(it->revision, it->event);
    }
  }
  return read;
}

}  // namespace ppe::store
