#include "ppe-service/common/timer_queue.h"

#include <utility>

namespace ppe {

TimerQueue::TimerQueue() : thread_([this] { Loop(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.Signal();
  thread_.join();
}

void TimerQueue::RunAfter(absl::Duration delay, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push(Entry{absl::Now() + delay, seq_++, std::move(fn)});
  cv_.Signal();
}

void TimerQueue::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    absl::Time when = queue_.top().when;
    if (absl::Now() < when) {
      cv_.WaitWithDeadline(&mu_, when);
      continue;
    }
    std::function<void()> fn = std::move(const_cast<Entry&>(queue_.top()).fn);
    queue_.pop();
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

}  // namespace ppe
