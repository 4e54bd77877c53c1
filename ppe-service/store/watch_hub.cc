#include "ppe-service/store/watch_hub.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

#include "ppe-service/store/txn_rules.h"

namespace ppe::store::internal {

// Revisions read per history query, to bound memory during a long catch-up.
constexpr int64_t kRevisionsPerRead = 256;

struct WatchHub::Watcher {
  std::string prefix;
  WatchCallback callback;
  // Next revision to deliver. Guarded by Core::mu.
  int64_t next = 0;
  bool cancelled = false;   // Guarded by Core::mu.
  bool delivering = false;  // Guarded by Core::mu.
};

struct WatchHub::Core {
  absl::Mutex mu;
  EventSource* source ABSL_GUARDED_BY(mu) = nullptr;  // null once stopped
  int64_t head ABSL_GUARDED_BY(mu) = 0;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::vector<std::shared_ptr<Watcher>> watchers ABSL_GUARDED_BY(mu);
  std::thread::id dispatcher_id;  // set before the thread starts reading it

  bool HasWork() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (stopping) return true;
    for (const auto& w : watchers) {
      if (!w->cancelled && w->next <= head) return true;
    }
    return false;
  }

  // Calls the callback unless the watcher was cancelled; returns false if it
  // was. Must be called without mu held.
  bool Deliver(Watcher& w, const WatchResponse& response) ABSL_LOCKS_EXCLUDED(mu) {
    {
      absl::MutexLock lock(&mu);
      if (w.cancelled) return false;
      w.delivering = true;
    }
    w.callback(response);
    absl::MutexLock lock(&mu);
    w.delivering = false;
    return !w.cancelled;
  }

  void Remove(const std::shared_ptr<Watcher>& w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    watchers.erase(std::remove(watchers.begin(), watchers.end(), w), watchers.end());
  }

  void Run();
};

namespace {

class HubWatchHandle final : public WatchHandle {
 public:
  HubWatchHandle(std::shared_ptr<WatchHub::Core> core, std::shared_ptr<WatchHub::Watcher> watcher)
      : core_(std::move(core)), watcher_(std::move(watcher)) {}

  ~HubWatchHandle() override {
    absl::MutexLock lock(&core_->mu);
    watcher_->cancelled = true;
    core_->Remove(watcher_);
    if (std::this_thread::get_id() != core_->dispatcher_id) {
      Watcher* w = watcher_.get();
      core_->mu.Await(absl::Condition(
          +[](WatchHub::Watcher* w) { return !w->delivering; }, w));
    }
  }

 private:
  using Watcher = WatchHub::Watcher;
  std::shared_ptr<WatchHub::Core> core_;
  std::shared_ptr<WatchHub::Watcher> watcher_;
};

}  // namespace

void WatchHub::Core::Run() {
  while (true) {
    std::vector<std::shared_ptr<Watcher>> ready;
    int64_t head_now = 0;
    EventSource* src = nullptr;
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(this, &Core::HasWork));
      if (stopping) break;
      head_now = head;
      src = source;
      for (const auto& w : watchers) {
        if (!w->cancelled && w->next <= head) ready.push_back(w);
      }
    }
    for (const auto& w : ready) {
      int64_t from;
      {
        absl::MutexLock lock(&mu);
        from = w->next;
      }
      int64_t to = std::min(head_now, from + kRevisionsPerRead - 1);
      absl::StatusOr<EventRead> read = src->ReadEvents(w->prefix, from, to);
      WatchResponse terminal;
      if (!read.ok()) {
        terminal.status = read.status();
      } else if (read->compact_revision > 0) {
        terminal.status = CompactedError(read->compact_revision);
        terminal.compact_revision = read->compact_revision;
      }
      if (!terminal.status.ok()) {
        Deliver(*w, terminal);
        absl::MutexLock lock(&mu);
        w->cancelled = true;
        Remove(w);
        continue;
      }
      bool live = true;
      auto& events = read->events;
      for (size_t i = 0; i < events.size() && live;) {
        WatchResponse response;
        response.revision = events[i].first;
        while (i < events.size() && events[i].first == response.revision) {
          response.events.push_back(std::move(events[i].second));
          ++i;
        }
        live = Deliver(*w, response);
      }
      absl::MutexLock lock(&mu);
      w->next = to + 1;
    }
  }
  // Stopping: tell every remaining watcher, then forget them.
  std::vector<std::shared_ptr<Watcher>> remaining;
  {
    absl::MutexLock lock(&mu);
    remaining = watchers;
  }
  WatchResponse cancelled;
  cancelled.status = absl::CancelledError("registry store is shutting down");
  for (const auto& w : remaining) Deliver(*w, cancelled);
  absl::MutexLock lock(&mu);
  for (const auto& w : remaining) w->cancelled = true;
  watchers.clear();
  source = nullptr;
}

WatchHub::WatchHub(EventSource* source, int64_t head) : core_(std::make_shared<Core>()) {
  {
    absl::MutexLock lock(&core_->mu);
    core_->source = source;
    core_->head = head;
  }
  std::shared_ptr<Core> core = core_;
  thread_ = std::thread([core] { core->Run(); });
  core_->dispatcher_id = thread_.get_id();
}

WatchHub::~WatchHub() { Stop(); }

absl::StatusOr<std::unique_ptr<WatchHandle>> WatchHub::Add(absl::string_view prefix,
                                                           int64_t from_revision,
                                                           WatchCallback callback) {
  if (from_revision < 0) {
    return absl::InvalidArgumentError(absl::StrCat("watch: negative revision ", from_revision));
  }
  if (!callback) return absl::InvalidArgumentError("watch: no callback");
  auto watcher = std::make_shared<Watcher>();
  watcher->prefix = std::string(prefix);
  watcher->callback = std::move(callback);
  absl::MutexLock lock(&core_->mu);
  watcher->next = from_revision > 0 ? from_revision : core_->head + 1;
  if (core_->stopping) {
    watcher->cancelled = true;
  } else {
    core_->watchers.push_back(watcher);
  }
  return std::make_unique<HubWatchHandle>(core_, std::move(watcher));
}

void WatchHub::Notify(int64_t head) {
  absl::MutexLock lock(&core_->mu);
  core_->head = std::max(core_->head, head);
}

void WatchHub::Stop() {
  if (!thread_.joinable()) return;
  {
    absl::MutexLock lock(&core_->mu);
    core_->stopping = true;
  }
  thread_.join();
}

}  // namespace ppe::store::internal
