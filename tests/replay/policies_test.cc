// Properties of ppe-replay's pieces and policies beyond the hand-checked
// trace: scoring within a bucket, boot latencies, the knobs' direction, the
// PPE's global budget by tier, its forecast ahead of a daily rise, and
// repeatability.

#include <catch2/catch.hpp>
#include <cmath>

#include "ppe-service/replay/baseline_policies.h"
#include "ppe-service/replay/boot_latency.h"
#include "ppe-service/replay/counts.h"
#include "ppe-service/replay/ppe_policy.h"
#include "ppe-service/replay/runner.h"

namespace ppe::replay {
namespace {

TEST_CASE("a bucket's requests are cold while the serving VMs are full") {
  Setup s;
  s.bucket_seconds = 60;
  s.capacity = 1;  // 60 requests per bucket per VM
  s.boot_median = 20;
  s.boot_sigma = 0;
  Profile p{.name = "p", .demand = {120}};
  Score sc;
  // One VM serving all along, a second ready at 30 s: 1 request/s is cold
  // for 30 s, waiting for the second on average 15 s.
  ScoreBucket(s, p, 0, {SimVm{-100, -100}, SimVm{0, 30}}, sc);
  CHECK(sc.requests == 120);
  CHECK(sc.cold == Approx(30));
  CHECK(sc.vm_seconds == Approx(60 + 60));
  CHECK(sc.created == 1);
  CHECK(sc.LatencyMs(0.99) == Approx(15000));
  // No VM booting: a cold request waits the boot time's 90th percentile.
  Score none;
  ScoreBucket(s, p, 0, {}, none);
  CHECK(none.cold == Approx(120));
  CHECK(none.LatencyMs(0.5) == Approx(20000));
}

TEST_CASE("boot latencies: lognormal around the median, the same sequence every time") {
  BootLatency a(30, 0.5), b(30, 0.5);
  std::vector<double> draws;
  for (size_t k = 0; k < 2001; ++k) {
    CHECK(a.At(k) == b.At(k));
    draws.push_back(a.At(k));
  }
  std::nth_element(draws.begin(), draws.begin() + 1000, draws.end());
  CHECK(draws[1000] == Approx(30).epsilon(0.06));
  BootLatency fixed(30, 0);
  CHECK(fixed.At(5) == 30);
  CHECK(fixed.P90() == 30);
}

TEST_CASE("counts: errors name what is wrong") {
  CHECK(ParseCounts("").status().message() == "no counts: the file is empty");
  CHECK(ParseCounts("1\nx\n").status().message() == "line 2: not a number: 'x'");
  CHECK(ParseCounts("1\n-2\n").status().message() == "count 2 is negative: -2");
  CHECK(ParseCounts("t,1\nu,\n").status().message() == "count 2 is missing");
  CHECK(*ParseCounts("period,count\n2020-01-01,3\n2020-01-02,4\n") == std::vector<double>{3, 4});
}

// A daily shape on hourly buckets: quiet nights, a morning rise to a peak.
Setup Daily(int days) {
  Setup s;
  s.bucket_seconds = 3600;
  s.capacity = 100.0 / 3600;  // 100 requests an hour per VM
  s.boot_sigma = 0;
  s.periods = {24};
  s.profiles.push_back({.name = "daily"});
  for (int d = 0; d < days; ++d) {
    for (int h = 0; h < 24; ++h) {
      s.profiles[0].demand.push_back(h < 7 || h > 20 ? 0 : 100 * (1 + (h < 14 ? h - 7 : 20 - h)));
    }
  }
  s.warmup_buckets = 24 * (days - 3);
  return s;
}

TEST_CASE("target tracking: a lower utilisation target costs more VM-seconds") {
  Setup s = Daily(6);
  BootLatency b1(30, 0), b2(30, 0);
  Score low = TargetTracking(s, s.profiles[0], b1, 0.4);
  Score high = TargetTracking(s, s.profiles[0], b2, 0.9);
  CHECK(low.vm_seconds > high.vm_seconds);
  CHECK(low.cold <= high.cold);
}

TEST_CASE("keep-alive: a longer keep-alive costs more and misses less") {
  Setup s = Daily(6);
  BootLatency b1(30, 0), b2(30, 0);
  Score short_keep = KeepAlive(s, s.profiles[0], b1, 3600);
  Score long_keep = KeepAlive(s, s.profiles[0], b2, 12 * 3600);
  CHECK(long_keep.vm_seconds > short_keep.vm_seconds);
  CHECK(long_keep.cold < short_keep.cold);
}

TEST_CASE("the PPE's forecast provisions ahead of the daily rise") {
  Setup s = Daily(8);
  Result predictive = Run(s, "ppe-predictive", Knob{});
  Result reactive = Run(s, "ppe-no-forecast", Knob{});
  Result allocate = Run(s, "reactive", Knob{});
  INFO("predictive " << predictive.total.cold << ", no forecast " << reactive.total.cold
                     << ", allocate on query " << allocate.total.cold);
  CHECK(reactive.total.cold > 0);
  CHECK(predictive.total.cold < 0.5 * reactive.total.cold);
  // Measured: 10 cold requests against 1,210 without the forecast and 17.5
  // for allocate-on-query. The pool now drains each night (the HPA-style
  // scale-down) and creates 12 VMs in the scored days; 12 boots of 30 s at
  // 100 requests an hour are 10 requests, as if each booted in the bucket it
  // serves. The earlier drain (one VM per 15 quiet buckets) never drained on
  // hourly buckets: 3 VMs, 2.5 cold requests, 2.9 times the oracle's
  // VM-seconds (2.8 now).
  CHECK(predictive.total.cold < allocate.total.cold);
}

TEST_CASE("the PPE replay is repeatable") {
  Setup s = Daily(6);
  s.boot_sigma = 0.5;
  Result a = Run(s, "ppe-predictive", Knob{});
  Result b = Run(s, "ppe-predictive", Knob{});
  CHECK(a.total.cold == b.total.cold);
  CHECK(a.total.vm_seconds == b.total.vm_seconds);
  CHECK(a.total.created == b.total.created);
}

TEST_CASE("the global budget goes to the premium tier first") {
  Setup s = Daily(4);
  s.warmup_buckets = 0;
  s.budget = 1;
  s.capacity = 1000.0 / 3600;  // one VM serves the daily peak
  s.profiles.push_back(s.profiles[0]);
  s.profiles[0].name = "standard-profile";
  s.profiles[1].name = "premium-profile";
  s.profiles[1].tier = "premium";
  s.adaptive_spares = false;  // a spare would take the budget's one VM
  std::vector<Score> scores = RunPpe(s, PpeKnobs{.mode = scaler::Scaler::Mode::kReactive}).profiles;
  REQUIRE(scores.size() == 2);
  INFO("standard: " << scores[0].cold << " cold, " << scores[0].vm_seconds << " VM-s; premium: "
                    << scores[1].cold << " cold, " << scores[1].vm_seconds << " VM-s");
  // The resolver allocates for whoever asks first (here the standard profile,
  // first in order) within the VM limit; the scaler then gives the budget to
  // premium and drains the standard profile's VM.
  CHECK(scores[1].cold < 0.5 * scores[0].cold);
  CHECK(scores[1].vm_seconds > 2 * scores[0].vm_seconds);
}

}  // namespace
}  // namespace ppe::replay
