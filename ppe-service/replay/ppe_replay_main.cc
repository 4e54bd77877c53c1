// ppe-replay: what the PPE's scaler would have done with a recorded trace,
// against the policies operators run today. See docs/evaluation.md.
//
//   ppe-replay --counts FILE [--bucket-seconds 60] [--capacity R]
//              [--boot-seconds MEDIAN[,SIGMA]] [--period P]... [--warmup-buckets W]
//              [--policy NAME]... [--csv OUT] [--plot OUT.png] [--sweep]
//   ppe-replay --log ACCESS_LOG [--config PPE_CONFIG] ...    (one profile per client cohort)
//   ppe-replay --synthetic N --shapes M4_HOURLY_CSV ...      (N profiles, Zipf sizes)
//
// Prints one JSON object per line per policy (and per knob setting with
// --sweep) on stdout.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ppe-service/common/log.h"
#include "ppe-service/config/config_loader.h"
#include "ppe-service/cpt/region_table.h"
#include "ppe-service/forecast/stats.h"
#include "ppe-service/replay/access_log.h"
#include "ppe-service/replay/counts.h"
#include "ppe-service/replay/runner.h"
#include "ppe-service/replay/setup.h"
#include "ppe-service/replay/synthetic.h"
#include "ppe-service/scaler/scaler.h"

namespace {

using ppe::replay::Result;
using ppe::replay::Setup;

struct Flags {
  std::string counts, log, csv, plot, config, shapes;
  double bucket_seconds = 60;
  double capacity = NAN;
  double boot_median = 30, boot_sigma = 0.5;
  std::vector<int> periods;
  int warmup = -1;
  std::vector<std::string> policies;
  bool sweep = false;
  int synthetic = 0;
  int budget = 100000;
  bool no_spares = false;
  bool pool_sparse = false;
  double level = NAN;     // the PPE's prediction level, percent (NaN: the scaler's default)
  double cooldown = NAN;  // the PPE's scale-down window, buckets (NaN: the scaler's default)
};

constexpr char kUsage[] =
    "usage: ppe-replay (--counts FILE | --log ACCESS_LOG | --synthetic N --shapes CSV)\n"
    "  [--bucket-seconds N] [--capacity R] [--boot-seconds MEDIAN[,SIGMA]] [--period P]...\n"
    "  [--warmup-buckets W] [--policy NAME]... [--csv OUT] [--plot OUT.png] [--sweep]\n"
    "  [--config PPE_CONFIG] [--budget VMS] [--no-spares] [--pool-sparse]\n"
    "  [--level PERCENT] [--cooldown BUCKETS]\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "ppe-replay: %s\n", message.c_str());
  return 2;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Positive(const std::string& v, double* out) {
  return absl::SimpleAtod(v, out) && std::isfinite(*out) && *out > 0;
}

// Parses argv into `f`; an error message, or empty.
std::string ParseFlags(int argc, char** argv, Flags& f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    if (size_t eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (a == "--sweep") {
      f.sweep = true;
      continue;
    } else if (a == "--no-spares") {
      f.no_spares = true;
      continue;
    } else if (a == "--pool-sparse") {
      f.pool_sparse = true;
      continue;
    } else if (a == "--help" || a == "-h") {
      return "help";
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      return absl::StrCat(a, " needs a value");
    }
    double d = 0;
    int n = 0;
    if (a == "--counts") {
      f.counts = v;
    } else if (a == "--log") {
      f.log = v;
    } else if (a == "--csv") {
      f.csv = v;
    } else if (a == "--plot") {
      f.plot = v;
    } else if (a == "--config") {
      f.config = v;
    } else if (a == "--shapes") {
      f.shapes = v;
    } else if (a == "--bucket-seconds") {
      if (!Positive(v, &f.bucket_seconds)) return "--bucket-seconds must be a positive number";
    } else if (a == "--capacity") {
      if (!Positive(v, &f.capacity)) return "--capacity must be a positive number (requests/s)";
    } else if (a == "--boot-seconds") {
      std::vector<std::string> parts = absl::StrSplit(v, ',');
      if (parts.size() > 2 || !absl::SimpleAtod(parts[0], &f.boot_median) ||
          !std::isfinite(f.boot_median) || f.boot_median < 0 ||
          (parts.size() == 2 && (!absl::SimpleAtod(parts[1], &f.boot_sigma) ||
                                 !std::isfinite(f.boot_sigma) || f.boot_sigma < 0))) {
        return "--boot-seconds wants MEDIAN[,SIGMA], both non-negative numbers";
      }
    } else if (a == "--period") {
      if (!absl::SimpleAtoi(v, &n) || n < 2) return "--period must be an integer >= 2 (buckets)";
      f.periods.push_back(n);
    } else if (a == "--warmup-buckets") {
      if (!absl::SimpleAtoi(v, &f.warmup) || f.warmup < 0) {
        return "--warmup-buckets must be a non-negative integer";
      }
    } else if (a == "--policy") {
      for (absl::string_view p : absl::StrSplit(v, ',')) {
        if (!ppe::replay::IsPolicy(std::string(p))) {
          return absl::StrCat("unknown policy '", p,
                              "'; known: ", absl::StrJoin(ppe::replay::PolicyNames(), ", "));
        }
        f.policies.emplace_back(p);
      }
    } else if (a == "--synthetic") {
      if (!absl::SimpleAtoi(v, &f.synthetic) || f.synthetic < 1) {
        return "--synthetic must be a positive integer (profiles)";
      }
    } else if (a == "--level") {
      if (!Positive(v, &f.level) || f.level >= 100) return "--level must be in (0, 100) (percent)";
    } else if (a == "--cooldown") {
      if (!absl::SimpleAtoi(v, &n) || n < 1)
        return "--cooldown must be a positive integer (buckets)";
      f.cooldown = n;
    } else if (a == "--budget") {
      if (!absl::SimpleAtoi(v, &f.budget) || f.budget < 1) return "--budget must be positive";
    } else {
      (void)d;
      return absl::StrCat("unknown option ", a);
    }
  }
  const int sources = !f.counts.empty() + !f.log.empty() + (f.synthetic > 0);
  if (sources != 1) return "give exactly one of --counts, --log, --synthetic";
  if (f.synthetic > 0 && f.shapes.empty()) return "--synthetic needs --shapes (M4 hourly CSV)";
  return "";
}

// Each of `cycles` (seconds) in buckets, where a bucket divides it into at
// least two.
std::vector<int> CyclesInBuckets(double bucket, std::initializer_list<double> cycles) {
  std::vector<int> out;
  for (double cycle : cycles) {
    const double p = cycle / bucket;
    if (p >= 2 && std::abs(p - std::round(p)) < 1e-9) out.push_back(static_cast<int>(p));
  }
  return out;
}

// Daily and weekly cycles, where a bucket divides them.
std::vector<int> DefaultPeriods(double bucket) { return CyclesInBuckets(bucket, {86400, 604800}); }

// With the default periods: says on stderr when the demand, summed over the
// profiles, repeats over a shorter cycle (a quarter hour to half a day) that
// they leave out, and how to try it for every series. The replay goes on with
// the defaults, as the server would with its configured periods (its
// services' sparse arrivals follow the hour and the day either way).
void HintCycle(const Setup& s) {
  std::vector<double> total(s.buckets(), 0.0);
  for (const ppe::replay::Profile& p : s.profiles) {
    for (size_t t = 0; t < total.size(); ++t) total[t] += p.demand[t];
  }
  const std::vector<int> candidates =
      CyclesInBuckets(s.bucket_seconds, {900, 1800, 3600, 7200, 10800, 21600, 43200});
  const int cycle = ppe::forecast::ShortestCycle(total, candidates);
  if (cycle == 0) return;
  std::fprintf(stderr,
               "ppe-replay: the demand repeats every %d buckets (%g s; autocorrelation %.2f, "
               "against %.2f at half that lag), a cycle the default periods leave out; the "
               "scaler follows the hour and the day for sparse arrivals on its own. To forecast "
               "every series with it, try --period %d%s%s and compare (seasonal_periods in the "
               "server's config)\n",
               cycle, cycle * s.bucket_seconds, ppe::forecast::Autocorrelation(total, cycle),
               ppe::forecast::Autocorrelation(total, cycle / 2), cycle,
               s.periods.empty() ? "" : " --period ",
               absl::StrJoin(s.periods, " --period ").c_str());
}

std::string CsvRow(const Setup& s, const Result& r, double oracle) {
  const ppe::replay::Score& t = r.total;
  const double hours = t.buckets * s.bucket_seconds / 3600;
  return absl::StrCat(r.policy, ",\"", r.knob, "\",", t.requests, ",", t.cold_rate(), ",",
                      t.vm_seconds, ",", oracle > 0 ? t.vm_seconds / oracle : 0, ",",
                      t.LatencyMs(0.5), ",", t.LatencyMs(0.99), ",", t.LatencyMs(0.999), ",",
                      hours > 0 ? (t.created + t.released) / hours : 0, ",", t.created);
}

// Cold-start rate against VM-seconds (vs the oracle), one line per policy.
absl::Status Plot(const std::vector<Result>& results, double oracle, const std::string& trace,
                  const std::string& out) {
  std::map<std::string, std::vector<std::pair<double, double>>> curves;
  for (const Result& r : results) {
    if (r.policy == "oracle") continue;
    std::string family = r.policy;
    if (family == "reactive" || family.starts_with("keepalive")) family = "keep-alive";
    // Zero cold starts cannot sit on a log axis: drawn at 1e-7.
    curves[family].push_back({r.total.vm_seconds / oracle, std::max(1e-7, r.total.cold_rate())});
  }
  std::string data = out + ".dat";
  std::ofstream d(data);
  std::string plot_cmds;
  int index = 0;
  for (auto& [family, points] : curves) {
    std::sort(points.begin(), points.end());
    for (const auto& [x, y] : points) d << x << " " << y << "\n";
    d << "\n\n";
    absl::StrAppend(&plot_cmds, index ? ", " : "", "'", data, "' index ", index,
                    " with linespoints lw 2 pt ", 5 + index, " title '", family, "'");
    ++index;
  }
  d.close();
  std::string script = absl::StrCat(
      "set terminal pngcairo size 900,600 noenhanced\nset output '", out,
      "'\nset logscale y\nset xlabel 'VM-seconds / oracle'\n"
      "set ylabel 'cold-start rate (0 drawn at 1e-7)'\nset grid\nset key outside right\n"
      "set title 'Pareto: ",
      trace, "'\nplot ", plot_cmds, "\n");
  std::string script_path = out + ".gp";
  std::ofstream(script_path) << script;
  int rc = std::system(absl::StrCat("gnuplot '", script_path, "'").c_str());
  std::remove(script_path.c_str());
  std::remove(data.c_str());
  if (rc != 0) return absl::InternalError("gnuplot failed (Debian package gnuplot-nox)");
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);  // one line per VM, and per refused scale-up, otherwise
  Flags f;
  if (std::string err = ParseFlags(argc, argv, f); !err.empty()) {
    if (err == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fputs(kUsage, stderr);
    return Fail(err);
  }
  Setup s;
  s.bucket_seconds = f.bucket_seconds;
  s.boot_median = f.boot_median;
  s.boot_sigma = f.boot_sigma;
  s.budget = f.budget;
  s.adaptive_spares = !f.no_spares;
  s.pool_sparse = f.pool_sparse;
  std::string trace;
  if (!f.counts.empty()) {
    absl::StatusOr<std::string> text = ReadFile(f.counts);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    absl::StatusOr<std::vector<double>> counts = ppe::replay::ParseCounts(*text);
    if (!counts.ok()) return Fail(absl::StrCat(f.counts, ": ", counts.status().message()));
    s.profiles.push_back({.name = "trace", .demand = std::move(*counts)});
    trace = f.counts.substr(f.counts.rfind('/') + 1);
  } else if (!f.log.empty()) {
    absl::StatusOr<std::string> text = ReadFile(f.log);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    ppe::cpt::RegionTable regions;
    ppe::replay::LogOptions options{.bucket_seconds = s.bucket_seconds};
    if (!f.config.empty()) {
      absl::StatusOr<ppe::config::v1::PpeConfig> config = ppe::config::LoadPpeConfig(f.config);
      if (!config.ok()) return Fail(absl::StrCat(f.config, ": ", config.status().message()));
      for (const auto& rule : config->regions()) {
        if (absl::Status st = regions.Add(rule.cidr(), rule.region()); !st.ok()) {
          return Fail(absl::StrCat(f.config, ": ", st.message()));
        }
      }
      options.regions = &regions;
      options.time_buckets_per_day = static_cast<int>(config->cpt().time_buckets_per_day());
    }
    int skipped = 0;
    absl::StatusOr<std::vector<ppe::replay::Profile>> profiles =
        ppe::replay::ProfilesFromLog(*text, options, &skipped);
    if (!profiles.ok()) return Fail(absl::StrCat(f.log, ": ", profiles.status().message()));
    std::fprintf(stderr, "ppe-replay: %zu profiles from %s (%d lines skipped)\n", profiles->size(),
                 f.log.c_str(), skipped);
    s.profiles = std::move(*profiles);
    trace = f.log.substr(f.log.rfind('/') + 1);
  } else {
    absl::StatusOr<std::string> text = ReadFile(f.shapes);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    absl::StatusOr<std::vector<ppe::replay::Profile>> profiles =
        ppe::replay::SyntheticPopulation(*text, f.synthetic);
    if (!profiles.ok()) return Fail(absl::StrCat(f.shapes, ": ", profiles.status().message()));
    s.profiles = std::move(*profiles);
    trace = absl::StrCat("synthetic-", f.synthetic);
  }
  const int n = s.buckets();
  constexpr int kMinBuckets = 4;
  if (n < kMinBuckets) {
    return Fail(
        absl::StrCat("the trace is too short: ", n, " buckets, need at least ", kMinBuckets));
  }
  s.warmup_buckets = f.warmup >= 0 ? f.warmup : n / 4;
  if (s.warmup_buckets >= n) {
    return Fail(absl::StrCat("the trace is too short: ", n, " buckets, all within the warm-up of ",
                             s.warmup_buckets));
  }
  s.periods = f.periods.empty() ? DefaultPeriods(s.bucket_seconds) : f.periods;
  if (f.periods.empty()) HintCycle(s);
  if (std::isnan(f.capacity)) {
    // Default: the largest profile's scored peak needs 20 VMs.
    double peak = 0;
    for (const auto& p : s.profiles) {
      for (int t = s.warmup_buckets; t < n; ++t) peak = std::max(peak, p.demand[t]);
    }
    f.capacity = std::max(peak, 1.0) / s.bucket_seconds / 20;
    std::fprintf(stderr,
                 "ppe-replay: --capacity not given: %.6g requests/s per VM (peak = 20 VMs)\n",
                 f.capacity);
  }
  s.capacity = f.capacity;
  std::vector<std::string> policies = f.policies.empty() ? ppe::replay::PolicyNames() : f.policies;

  double oracle = 0;
  for (const ppe::replay::Profile& p : s.profiles)
    oracle += ppe::replay::OracleScore(s, p).vm_seconds;
  std::vector<Result> results;
  for (const std::string& policy : policies) {
    std::vector<ppe::replay::Knob> knobs = {ppe::replay::Knob{}};
    if (!f.sweep && policy.starts_with("ppe-") &&
        (!std::isnan(f.level) || !std::isnan(f.cooldown))) {
      const ppe::scaler::Scaler::Options defaults;
      knobs = {{.value = std::isnan(f.level) ? defaults.level : f.level,
                .cooldown = std::isnan(f.cooldown) ? defaults.cooldown : f.cooldown}};
    }
    if (f.sweep) {
      knobs = ppe::replay::SweepKnobs(policy);
      if (knobs.empty()) continue;  // keepalive-10m/20m: points of reactive's curve
    }
    for (const ppe::replay::Knob& k : knobs) {
      Result r = ppe::replay::Run(s, policy, k);
      std::printf("%s\n", ppe::replay::ToJson(s, r, trace, oracle).c_str());
      std::fflush(stdout);
      results.push_back(std::move(r));
    }
  }
  if (!f.csv.empty()) {
    std::ofstream out(f.csv);
    out << "policy,knob,requests,cold_start_rate,vm_seconds,vm_seconds_vs_oracle,"
           "added_latency_ms_p50,added_latency_ms_p99,added_latency_ms_p99_9,"
           "scaling_actions_per_hour,vms_created\n";
    for (const Result& r : results) out << CsvRow(s, r, oracle) << "\n";
    if (!out) return Fail(absl::StrCat("cannot write ", f.csv));
  }
  if (!f.plot.empty()) {
    if (absl::Status st = Plot(results, oracle, trace, f.plot); !st.ok()) {
      return Fail(std::string(st.message()));
    }
  }
  return 0;
}
