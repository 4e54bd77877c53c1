#pragma once

#include <functional>
#include <thread>
#include <utility>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace ppe {

// Runs `tick` every `interval` on its own thread until Stop (or destruction).
class PeriodicThread {
 public:
  ~PeriodicThread() { Stop(); }

  void Start(absl::Duration interval, std::function<void()> tick) {
    thread_ = std::thread([this, interval, tick = std::move(tick)] {
      while (!stop_.WaitForNotificationWithTimeout(interval)) tick();
    });
  }

  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ppe
