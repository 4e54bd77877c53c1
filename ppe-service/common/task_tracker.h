#pragma once

#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/common/thread_pool.h"

namespace ppe {

// Counts the tasks an object puts on a shared ThreadPool, so its destructor
// can wait for them: a task never outlives the object it captured.
class TaskTracker {
 public:
  ~TaskTracker() { WaitIdle(); }

  void Schedule(ThreadPool& pool, std::function<void()> task) {
    {
      absl::MutexLock lock(&mu_);
      ++outstanding_;
    }
    pool.Schedule([this, task = std::move(task)] {
      task();
      absl::MutexLock lock(&mu_);
      --outstanding_;
    });
  }

  void WaitIdle() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &outstanding_));
  }

 private:
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ppe
