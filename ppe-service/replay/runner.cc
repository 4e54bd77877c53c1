#include "ppe-service/replay/runner.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ppe-service/replay/baseline_policies.h"
#include "ppe-service/replay/boot_latency.h"
#include "ppe-service/replay/ppe_policy.h"

namespace ppe::replay {
namespace {

double Or(double v, double fallback) { return std::isnan(v) ? fallback : v; }

std::string Num(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.6g", v);
}

std::string Metrics(const Setup& s, const Score& sc, double oracle_vm_seconds) {
  const double hours = sc.buckets * s.bucket_seconds / 3600;
  return absl::StrCat("\"requests\":", Num(sc.requests), ",\"cold_requests\":", Num(sc.cold),
                      ",\"cold_start_rate\":", Num(sc.cold_rate()),
                      ",\"vm_seconds\":", Num(sc.vm_seconds), ",\"vm_seconds_vs_oracle\":",
                      Num(oracle_vm_seconds > 0 ? sc.vm_seconds / oracle_vm_seconds : NAN),
                      ",\"added_latency_ms\":{\"p50\":", Num(sc.LatencyMs(0.5)),
                      ",\"p99\":", Num(sc.LatencyMs(0.99)), ",\"p99.9\":", Num(sc.LatencyMs(0.999)),
                      "},\"scaling_actions_per_hour\":",
                      Num(hours > 0 ? static_cast<double>(sc.created + sc.released) / hours : 0),
                      ",\"vms_created\":", sc.created);
}

}  // namespace

std::string Knob::Label(const std::string& policy) const {
  if (std::isnan(value)) return "";
  if (policy == "reactive" || policy.starts_with("keepalive")) {
    return absl::StrFormat("keep-alive %gs", value);
  }
  if (policy == "target-tracking") return absl::StrFormat("utilisation %g", value);
  if (policy == "hybrid-histogram") return absl::StrFormat("tail percentile %g", value);
  if (policy == "ppe-predictive") return absl::StrFormat("level %g, cooldown %g", value, cooldown);
  if (policy == "ppe-no-forecast") return absl::StrFormat("cooldown %g", cooldown);
  return "";
}

const std::vector<std::string>& PolicyNames() {
  static const std::vector<std::string> names = {
      "oracle",           "static-peak",     "reactive",       "keepalive-10m",  "keepalive-20m",
      "hybrid-histogram", "target-tracking", "ppe-predictive", "ppe-no-forecast"};
  return names;
}

bool IsPolicy(const std::string& name) {
  const auto& n = PolicyNames();
  return std::find(n.begin(), n.end(), name) != n.end();
}

std::vector<Knob> SweepKnobs(const std::string& policy) {
  std::vector<Knob> knobs;
  if (policy == "reactive") {
    for (double m : {1, 2, 5, 10, 20, 30, 60}) knobs.push_back({m * 60});
  } else if (policy == "target-tracking") {
    for (double u : {0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}) knobs.push_back({u});
  } else if (policy == "hybrid-histogram") {
    for (double q : {0.5, 0.75, 0.9, 0.95, 0.99}) knobs.push_back({q});
  } else if (policy == "ppe-predictive") {
    for (double level : {80.0, 95.0, 99.0, 99.9}) {
      for (double cooldown : {5, 15, 30}) knobs.push_back({level, cooldown});
    }
  } else if (policy == "ppe-no-forecast") {
    for (double cooldown : {5, 15, 30}) knobs.push_back({0, cooldown});
  } else if (policy == "oracle" || policy == "static-peak") {
    knobs.push_back({});
  }
  return knobs;
}

Result Run(const Setup& s, const std::string& policy, const Knob& knob) {
  const absl::Time start = absl::Now();
  Result r;
  r.policy = policy;
  r.knob = knob.Label(policy);
  BootLatency boot(s.boot_median, s.boot_sigma);
  if (policy == "ppe-predictive" || policy == "ppe-no-forecast") {
    PpeKnobs k;
    k.mode = policy == "ppe-predictive" ? scaler::Scaler::Mode::kPredictive
                                        : scaler::Scaler::Mode::kReactive;
    if (policy == "ppe-predictive") k.level = Or(knob.value, k.level);
    k.cooldown = static_cast<int>(Or(knob.cooldown, k.cooldown));
    PpeScores ppe = RunPpe(s, k);
    r.per_profile = std::move(ppe.profiles);
    r.spares = ppe.spares;
  } else {
    for (const Profile& p : s.profiles) {
      Score sc;
      if (policy == "oracle") {
        sc = OracleScore(s, p);
      } else if (policy == "static-peak") {
        sc = StaticPeak(s, p);
      } else if (policy == "reactive") {
        sc = KeepAlive(s, p, boot, Or(knob.value, 60));
      } else if (policy == "keepalive-10m") {
        sc = KeepAlive(s, p, boot, Or(knob.value, 600));
      } else if (policy == "keepalive-20m") {
        sc = KeepAlive(s, p, boot, Or(knob.value, 1200));
      } else if (policy == "hybrid-histogram") {
        sc = HybridHistogram(s, p, boot, 0.05, Or(knob.value, 0.99));
      } else if (policy == "target-tracking") {
        sc = TargetTracking(s, p, boot, Or(knob.value, 0.7));
      }
      r.per_profile.push_back(std::move(sc));
    }
  }
  for (const Score& sc : r.per_profile) r.total.Add(sc);
  r.total.Add(r.spares);
  r.run_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

std::string ToJson(const Setup& s, const Result& r, const std::string& trace,
                   double oracle_vm_seconds) {
  std::string out = absl::StrCat("{\"trace\":\"", trace, "\",\"policy\":\"", r.policy, "\"");
  if (!r.knob.empty()) absl::StrAppend(&out, ",\"knob\":\"", r.knob, "\"");
  absl::StrAppend(&out, ",\"profiles\":", r.per_profile.size(), ",",
                  Metrics(s, r.total, oracle_vm_seconds));
  if (r.spares.created > 0) {
    absl::StrAppend(&out, ",\"spares\":{\"vm_seconds\":", Num(r.spares.vm_seconds),
                    ",\"vms_created\":", r.spares.created, "}");
  }
  if (r.per_profile.size() > 1) {
    // Profiles with scored requests by size (requests over the whole trace,
    // then position), cut into ten.
    std::vector<size_t> order;
    std::vector<double> size(r.per_profile.size());
    for (size_t i = 0; i < size.size(); ++i) {
      for (double d : s.profiles[i].demand) size[i] += d;
      if (r.per_profile[i].requests > 0) order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return size[a] < size[b]; });
    absl::StrAppend(&out, ",\"profiles_scored\":", order.size());
    absl::StrAppend(&out, ",\"by_size_decile\":[");
    auto mean_size = [&](size_t from, size_t to) {
      double sum = 0;
      for (size_t i = from; i < to; ++i) sum += size[order[i]];
      return to > from ? sum / (to - from) : 0.0;
    };
    for (int d = 0; d < 10; ++d) {
      const size_t from = order.size() * d / 10, to = order.size() * (d + 1) / 10;
      Score sc;
      for (size_t i = from; i < to; ++i) sc.Add(r.per_profile[order[i]]);
      absl::StrAppend(&out, d ? "," : "", "{\"decile\":", d + 1, ",\"profiles\":", to - from,
                      ",\"mean_size\":", Num(mean_size(from, to)),
                      ",\"requests\":", Num(sc.requests),
                      ",\"cold_start_rate\":", Num(sc.cold_rate()),
                      ",\"vm_seconds\":", Num(sc.vm_seconds), "}");
    }
    absl::StrAppend(&out, "]");
  }
  absl::StrAppend(&out, ",\"run_seconds\":", Num(r.run_seconds), "}");
  return out;
}

}  // namespace ppe::replay
