// forecast_bench: fit, forecast and update cost of ppe::forecast on real data
// (M4 hourly series, m = 24), and, with --with_r, the same fits timed in R's
// forecast package (ets, auto.arima) on the same series, printed as ratios.
//
//   forecast_bench [--series N] [--with_r] [--ets_distribution] [--arima_distribution]
//   [--slowest K] [--benchmark_filter=...]
//
// Series: every (414 / N)-th M4 hourly training series, decompressed with xz -dc
// from $PPE_DATA_DIR (default: the repository's tests/data, PPE_TEST_DATA_DIR).

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ppe-service/forecast/arima.h"
#include "ppe-service/forecast/decomposition.h"
#include "ppe-service/forecast/ets.h"
#include "ppe-service/forecast/forecaster.h"

namespace {

using namespace ppe::forecast;  // NOLINT: benchmark file.

std::vector<std::pair<std::string, std::vector<double>>> g_series;

std::string ReadCommand(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[1 << 16];
  size_t k;
  while ((k = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, k);
  pclose(p);
  return out;
}

void LoadSeries(int count) {
  const char* dir = std::getenv("PPE_DATA_DIR");
  const std::string path =
      absl::StrCat(dir != nullptr ? dir : PPE_TEST_DATA_DIR, "/m4-hourly-train.csv.xz");
  const std::string text = ReadCommand("xz -dc '" + path + "'");
  std::vector<std::pair<std::string, std::vector<double>>> all;
  bool header = true;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (header || line.empty()) {
      header = false;
      continue;
    }
    std::vector<std::string> f = absl::StrSplit(line, ',');
    std::vector<double> y;
    for (size_t i = 1; i < f.size(); ++i) {
      std::string v = f[i];
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      double d;
      if (!v.empty() && absl::SimpleAtod(v, &d)) y.push_back(d);
    }
    std::string id = f[0];
    if (id.size() >= 2 && id.front() == '"') id = id.substr(1, id.size() - 2);
    all.emplace_back(id, std::move(y));
  }
  const int step = std::max<int>(1, static_cast<int>(all.size()) / std::max(count, 1));
  for (size_t i = 0; i < all.size() && static_cast<int>(g_series.size()) < count; i += step) {
    g_series.push_back(all[i]);
  }
}

template <typename FitFn>
void RunFits(benchmark::State& state, FitFn fit) {
  size_t i = 0;
  for (auto _ : state) {
    auto m = fit(g_series[i % g_series.size()].second);
    benchmark::DoNotOptimize(m);
    ++i;
  }
  state.counters["series_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_EtsAuto(benchmark::State& state) {
  RunFits(state, [](const std::vector<double>& y) { return FitEtsAuto(y, 24).ok(); });
}
void BM_ArimaAuto(benchmark::State& state) {
  ArimaAutoOptions o;
  o.period = 24;
  RunFits(state, [&](const std::vector<double>& y) { return FitArimaAuto(y, o).ok(); });
}
void BM_DecompEts(benchmark::State& state) {
  DecompositionOptions o;
  o.periods = {24, 168};
  RunFits(state, [&](const std::vector<double>& y) { return FitDecompEts(y, o).ok(); });
}
void BM_AutoSelect(benchmark::State& state) {
  FitOptions o;
  o.periods = {24, 168};
  RunFits(state, [&](const std::vector<double>& y) { return Fit(y, o).ok(); });
}

void BM_Predict48(benchmark::State& state) {
  auto m = FitEtsAuto(g_series[0].second, 24);
  for (auto _ : state) benchmark::DoNotOptimize((*m)->Predict(48, 95));
}

void BM_UpdatePerBucket(benchmark::State& state) {
  auto ets = FitEts(g_series[0].second, *EtsSpec::Parse("MAdM", 24));
  const std::vector<double>& y = g_series[0].second;
  size_t i = 0;
  for (auto _ : state) {
    (*ets)->Update(y[i++ % y.size()]);
    benchmark::ClobberMemory();
  }
  state.counters["updates_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

double MeanSeconds(const std::function<void(const std::vector<double>&)>& f, size_t count) {
  // CPU time, like R's proc.time() user + system below: fair on a loaded machine.
  const std::clock_t t0 = std::clock();
  for (size_t i = 0; i < count; ++i) f(g_series[i].second);
  return static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC / count;
}

void CompareWithR(size_t arima_count) {
  const std::string dir = ReadCommand("mktemp -d | tr -d '\\n'");
  const std::string csv = dir + "/series.csv";
  {
    std::ofstream out(csv);
    for (const auto& [id, y] : g_series) {
      out << id;
      for (double v : y) out << "," << absl::StrCat(v);
      out << "\n";
    }
  }
  // Fit time, and the time of a 48-step forecast with a 95% interval from the
  // fitted model (mean of 20 repetitions), per series.
  const std::string script = absl::StrCat(
      "suppressPackageStartupMessages(library(forecast)); L <- readLines('", csv, "');",
      "te <- 0; ta <- 0; fe <- 0; fa <- 0; na <- ", arima_count, ";",
      "cpu <- function() { p <- proc.time(); p[[1]] + p[[2]] };",
      "for (i in seq_along(L)) { f <- as.numeric(strsplit(L[i], ',')[[1]][-1]);",
      " y <- ts(f, frequency = 24); t0 <- cpu(); fit <- ets(y); te <- te + cpu() - t0;",
      " t0 <- cpu(); for (k in 1:20) fc <- forecast(fit, h = 48, level = 95);",
      " fe <- fe + (cpu() - t0) / 20;",
      " if (i <= na) { t0 <- cpu(); fit <- auto.arima(y); ta <- ta + cpu() - t0;",
      "  t0 <- cpu(); for (k in 1:20) fc <- forecast(fit, h = 48, level = 95);",
      "  fa <- fa + (cpu() - t0) / 20 } };",
      "cat(te / length(L), ta / na, fe / length(L), fa / na, '\\n')");
  std::ofstream(dir + "/t.R") << script;
  const std::string out = ReadCommand("/usr/bin/Rscript " + dir + "/t.R 2>/dev/null");
  std::system(("rm -rf '" + dir + "'").c_str());
  std::vector<std::string> f = absl::StrSplit(out, ' ', absl::SkipWhitespace());
  double r[4];
  if (f.size() < 4 || !absl::SimpleAtod(f[0], &r[0]) || !absl::SimpleAtod(f[1], &r[1]) ||
      !absl::SimpleAtod(f[2], &r[2]) || !absl::SimpleAtod(f[3], &r[3])) {
    std::cout << "R timing failed: " << out << "\n";
    return;
  }
  const double ours_ets =
      MeanSeconds([](const std::vector<double>& y) { FitEtsAuto(y, 24).ok(); }, g_series.size());
  ArimaAutoOptions ao;
  ao.period = 24;
  const double ours_arima =
      MeanSeconds([&](const std::vector<double>& y) { FitArimaAuto(y, ao).ok(); }, arima_count);
  auto forecast_seconds = [](const Model& m) {
    const std::clock_t t0 = std::clock();
    for (int k = 0; k < 20; ++k) benchmark::DoNotOptimize(m.Predict(48, 95));
    return static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC / 20;
  };
  double ours_fe = 0, ours_fa = 0;
  for (size_t i = 0; i < g_series.size(); ++i) {
    auto m = FitEtsAuto(g_series[i].second, 24);
    if (m.ok()) ours_fe += forecast_seconds(**m) / g_series.size();
    if (i < arima_count) {
      auto a = FitArimaAuto(g_series[i].second, ao);
      if (a.ok()) ours_fa += forecast_seconds(**a) / arima_count;
    }
  }
  std::printf(
      "\nAgainst R on the same %zu series (ets) / %zu series (auto.arima), CPU s per series:\n",
      g_series.size(), arima_count);
  std::printf("  %-22s %12s %12s %10s\n", "", "R (s)", "ours (s)", "R / ours");
  const char* names[4] = {"fit auto ETS", "fit auto ARIMA", "forecast ETS h=48 95%",
                          "forecast ARIMA h=48"};
  const double ours[4] = {ours_ets, ours_arima, ours_fe, ours_fa};
  for (int k = 0; k < 4; ++k) {
    std::printf("  %-22s %12.5f %12.5f %10.1f\n", names[k], r[k], ours[k], r[k] / ours[k]);
  }
}

// CPU time of `fit` on each loaded series once, the spread behind the
// benchmark's mean: mean, median, 90th percentile, max, and how many series
// took longer than `goal_ms`; then the `slowest` slowest series by name.
int g_slowest = 0;

void TimeDistribution(const char* name, double goal_ms,
                      const std::function<void(const std::vector<double>&)>& fit) {
  std::vector<double> ms;
  for (const auto& [id, y] : g_series) {
    const std::clock_t t0 = std::clock();
    fit(y);
    ms.push_back(1e3 * static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC);
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0;
  for (double v : ms) sum += v;
  auto at = [&](double q) { return sorted[static_cast<size_t>(q * (sorted.size() - 1))]; };
  const auto over = std::count_if(ms.begin(), ms.end(), [&](double v) { return v > goal_ms; });
  std::printf(
      "\n%s CPU ms over %zu series: mean %.1f, median %.1f, p90 %.1f, max %.1f; %td above %.0f "
      "ms\n",
      name, sorted.size(), sum / sorted.size(), at(0.5), at(0.9), sorted.back(), over, goal_ms);
  std::vector<size_t> order(ms.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ms[a] > ms[b]; });
  for (size_t k = 0; k < order.size() && static_cast<int>(k) < g_slowest; ++k) {
    std::printf("  %s %.1f ms\n", g_series[order[k]].first.c_str(), ms[order[k]]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int count = 24;
  bool with_r = false;
  bool ets_distribution = false;
  bool arima_distribution = false;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--with_r") == 0) {
      with_r = true;
    } else if (std::strcmp(argv[i], "--ets_distribution") == 0) {
      ets_distribution = true;
    } else if (std::strcmp(argv[i], "--arima_distribution") == 0) {
      arima_distribution = true;
    } else if (std::strcmp(argv[i], "--slowest") == 0 && i + 1 < argc) {
      g_slowest = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--series") == 0 && i + 1 < argc) {
      count = std::atoi(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  LoadSeries(count);
  if (g_series.empty()) {
    std::cerr << "forecast_bench: no series loaded (set PPE_DATA_DIR)\n";
    return 1;
  }
  std::cout << "series: " << g_series.size() << " M4 hourly (every " << 414 / std::max(count, 1)
            << "th), n = " << g_series[0].second.size() << ".."
            << "\n";
  benchmark::RegisterBenchmark("fit/ets_auto", BM_EtsAuto)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("fit/arima_auto", BM_ArimaAuto)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("fit/decomp_ets_24_168", BM_DecompEts)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("fit/auto_select", BM_AutoSelect)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("forecast/ets_h48", BM_Predict48)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("update/ets_per_bucket", BM_UpdatePerBucket);
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (ets_distribution) {
    TimeDistribution("FitEtsAuto", 50,
                     [](const std::vector<double>& y) { FitEtsAuto(y, 24).ok(); });
  }
  if (arima_distribution) {
    ArimaAutoOptions o;
    o.period = 24;
    TimeDistribution("FitArimaAuto", 1000,
                     [&](const std::vector<double>& y) { FitArimaAuto(y, o).ok(); });
  }
  if (with_r) CompareWithR(std::min<size_t>(3, g_series.size()));
  return 0;
}
