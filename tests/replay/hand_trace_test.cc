// The hand-checkable trace: 16 buckets of 120 s, one VM serves 0.5 requests/s
// (60 per bucket), every VM boots in exactly 30 s (sigma 0, so the boot
// time's 90th percentile, the cap on a cold request's wait, is 30 s too),
// nothing is warm-up. Demand, requests per bucket:
//
//   bucket  0  1  2  3  4  5  6  7  8  9 10 11  12 13 14 15
//   demand  0 60  0  0 60  0  0  0  0  0  0  0 120  0  0  0
//
// Requests arrive at a steady rate within a bucket: 60 in a bucket is 0.5/s,
// one VM's capacity; 120 is 1/s, two VMs. A request arriving while the
// serving VMs are full is cold. Every expected figure below is worked out by
// hand in the comment above it; bucket t covers [120 t, 120 t + 120) s.

#include <catch2/catch.hpp>

#include "ppe-service/replay/runner.h"
#include "ppe-service/replay/setup.h"

namespace ppe::replay {
namespace {

Setup HandSetup(bool spares) {
  Setup s;
  s.adaptive_spares = spares;
  s.profiles.push_back(
      {.name = "hand", .demand = {0, 60, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 120, 0, 0, 0}});
  s.bucket_seconds = 120;
  s.capacity = 0.5;
  s.boot_median = 30;
  s.boot_sigma = 0;
  s.warmup_buckets = 0;
  return s;
}

struct Expected {
  double cold = 0, vm_seconds = 0;
  int64_t created = 0, released = 0;
  double p50_ms = 0, p99_ms = 0;
};

// Without warm spares unless `spares`: the PPE's pools alone.
void Check(const std::string& policy, const Expected& e, bool spares = false) {
  INFO(policy);
  Result r = Run(HandSetup(spares), policy, Knob{});
  CHECK(r.total.requests == Approx(240));
  CHECK(r.total.cold == Approx(e.cold).margin(1e-9));
  CHECK(r.total.vm_seconds == Approx(e.vm_seconds).margin(1e-9));
  CHECK(r.total.created == e.created);
  CHECK(r.total.released == e.released);
  CHECK(r.total.LatencyMs(0.5) == Approx(e.p50_ms).margin(1e-6));
  CHECK(r.total.LatencyMs(0.99) == Approx(e.p99_ms).margin(1e-6));
}

TEST_CASE("oracle: exactly each bucket's need") {
  // Needs 1, 1, 2 VMs in buckets 1, 4, 12: 4 VM-buckets of 120 s. Created
  // 1 + 1 + 2, released in buckets 2, 5, 13.
  Check("oracle", {.cold = 0, .vm_seconds = 480, .created = 4, .released = 4});
}

TEST_CASE("static-peak: the peak's 2 VMs all along") {
  // 2 VMs x 16 buckets x 120 s.
  Check("static-peak", {.cold = 0, .vm_seconds = 3840, .created = 2, .released = 0});
}

TEST_CASE("reactive: created on a miss, released after 1 idle minute (one bucket)") {
  // Bucket 1: VM A created at 120, ready at 150: the 30 s before it are cold
  // (0.5/s x 30 s = 15 requests, each waiting for A: 15 s on average);
  // released at the end of bucket 2 (idle a bucket): 240 s. Bucket 4: the same
  // with VM B (15 cold, 240 s). Bucket 12: C and D created at 1440, 1 request/s
  // cold for 30 s (30 cold), released at the end of bucket 13: 2 x 240 s.
  // Cold 60 of 240; 180 warm, so the median waits 0 and the 99th percentile
  // 15 s.
  Check("reactive",
        {.cold = 60, .vm_seconds = 960, .created = 4, .released = 4, .p50_ms = 0, .p99_ms = 15000});
}

TEST_CASE("keepalive-10m: idle VMs kept 5 buckets") {
  // A created at 120 (15 cold), still there at bucket 4 (idle 2 buckets),
  // released at the end of bucket 9 (idle 5): 120..1200 = 1080 s. C and D at
  // 1440 (30 cold), kept to the trace's end at 1920: 2 x 480 s.
  Check(
      "keepalive-10m",
      {.cold = 45, .vm_seconds = 2040, .created = 3, .released = 1, .p50_ms = 0, .p99_ms = 15000});
}

TEST_CASE("keepalive-20m: idle VMs kept 10 buckets") {
  // A created at 120 (15 cold) is still there at bucket 12 (idle 7 buckets):
  // only D is created, at 1440; while it boots A serves half of 1 request/s,
  // so 0.5/s x 30 s = 15 cold. A: 120..1920 = 1800 s, D: 480 s.
  Check(
      "keepalive-20m",
      {.cold = 30, .vm_seconds = 2280, .created = 2, .released = 0, .p50_ms = 0, .p99_ms = 15000});
}

TEST_CASE("hybrid-histogram: fixed 10-minute keep-alive until 10 idle times are seen") {
  // Only one idle time is ever seen, so it behaves as keepalive-10m.
  Check(
      "hybrid-histogram",
      {.cold = 45, .vm_seconds = 2040, .created = 3, .released = 1, .p50_ms = 0, .p99_ms = 15000});
}

TEST_CASE("target-tracking: utilisation 0.7, scale-down stabilised over 5 minutes") {
  // Desired at a bucket's end = ceil(rate / (0.5 x 0.7)): 0.5/s -> 2, 1/s -> 3.
  // Bucket 1 has no VM: all 60 cold, none booting, so each waits the 30 s cap.
  // At 240: 2 VMs, ready at 270, serve bucket 4. The window keeps the last 3
  // buckets' desired counts ((t - t') x 120 s < 300 s): after bucket 4 it
  // holds 2 until bucket 7's end, when both are released at 960: 2 x 720 s.
  // Bucket 12: no VM, 120 cold (30 s each); 3 VMs at 1560, released at 1920
  // (bucket 15's window is 13..15, all 0): 3 x 360 s. Cold 180 of 240: the
  // median and the 99th percentile wait 30 s.
  Check("target-tracking", {.cold = 180,
                            .vm_seconds = 2520,
                            .created = 5,
                            .released = 2,
                            .p50_ms = 30000,
                            .p99_ms = 30000});
}

TEST_CASE("ppe-no-forecast: the PPE's scaler in reactive mode, and the resolver") {
  // Bucket 1: the first request finds no ready VM, so the resolver allocates
  // A at 120 (ready at 150): 15 cold, 15 s each. The scaler's tick at 240
  // wants 1 VM, which A is; a profile with requests in the last 10 buckets
  // keeps one VM, so A serves bucket 4 and is there at bucket 12, where it
  // takes half of 1 request/s and none boots: 60 cold at the 30 s cap. The
  // tick at 1560 adds B. From bucket 13 the scaler wants 1 VM again, but it
  // keeps the highest want of the last 15 buckets (2, the tick at 1560)
  // before draining, as the HPA does: none is released. A: 120..1920
  // = 1800 s, B: 360 s. Cold 75 of 240: the median waits 0 (165 warm), the
  // 99th percentile 30 s.
  Check(
      "ppe-no-forecast",
      {.cold = 75, .vm_seconds = 2160, .created = 2, .released = 0, .p50_ms = 0, .p99_ms = 30000});
}

TEST_CASE("ppe-no-forecast with adaptive warm spares") {
  // As above, and the service's arrivals (allocations for a profile with no
  // ready VM) drive its spares, in reactive mode the last bucket's count.
  // Bucket 1's request is an arrival: the tick at 240 wants 1 spare and
  // creates S1 (240, ready at 270). No arrival follows, so from the tick at
  // 360 the spares are above target, but the 15-bucket cooldown outlasts the
  // trace: S1 stays. The tick at 1560 adds B by taking S1 over (ready since
  // 270, so B serves at once, but bucket 12 is over: still 60 cold there),
  // and the spare is refilled: S2 at 1560. VM-seconds: A 1800, S1 as a spare
  // 240..1560 = 1320, B 1560..1920 = 360, S2 360: 3840. Created A, S1, S2
  // (taking S1 over is no creation), none released; cold as above.
  Check("ppe-no-forecast",
        {.cold = 75, .vm_seconds = 3840, .created = 3, .released = 0, .p50_ms = 0, .p99_ms = 30000},
        /*spares=*/true);
}

}  // namespace
}  // namespace ppe::replay
