#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ppe {

// Time source; tests and the trace replay inject a simulated one.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class WallClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static WallClock& Instance() {
    static WallClock clock;
    return clock;
  }
};

// A clock that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : now_(start) {}
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }
  void Set(absl::Time t) { now_ = t; }

 private:
  absl::Time now_;
};

}  // namespace ppe
