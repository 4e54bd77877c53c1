#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/replay/score.h"
#include "ppe-service/replay/setup.h"

namespace ppe::replay {

// One setting of a policy's knob: keep-alive seconds, target utilisation,
// the hybrid histogram's tail percentile, or the PPE's level and cooldown.
// NaN: the policy's default.
struct Knob {
  double value = NAN;
  double cooldown = NAN;  // the PPE's scale-down cooldown, buckets
  std::string Label(const std::string& policy) const;
};

// oracle, static-peak, reactive, keepalive-10m, keepalive-20m,
// hybrid-histogram, target-tracking, ppe-predictive, ppe-no-forecast.
const std::vector<std::string>& PolicyNames();
bool IsPolicy(const std::string& name);

// The knob settings --sweep tries for `policy` (the keep-alive curve is
// swept under `reactive`; keepalive-10m/20m are points on it).
std::vector<Knob> SweepKnobs(const std::string& policy);

// Replays every profile of `s` under `policy` with `knob`; the boot
// latencies come from a fresh sequence, the same for every policy.
Result Run(const Setup& s, const std::string& policy, const Knob& knob);

// The JSON line for a result. `oracle_vm_seconds`: the oracle's total.
// With more than one profile it adds the metrics by profile-size decile:
// the profiles with scored requests, by requests over the whole trace
// (decile 1: the smallest).
std::string ToJson(const Setup& s, const Result& r, const std::string& trace,
                   double oracle_vm_seconds);

}  // namespace ppe::replay
