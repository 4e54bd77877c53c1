#include "ppe-service/forecast/forecaster.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "ppe-service/forecast/decomposition.h"
#include "ppe-service/forecast/stats.h"

namespace ppe::forecast {
namespace {

// Per-minute request counts with a daily cycle and bursts (Poisson noise).
std::vector<double> PerMinute(int days, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> y;
  for (int t = 0; t < days * 1440; ++t) {
    const double rate = 50 + 40 * std::sin(2 * M_PI * t / 1440.0);
    std::poisson_distribution<int> count(rate);
    y.push_back(count(rng) + ((t % 997) == 0 ? 300 : 0));
  }
  return y;
}

TEST_CASE("Fit rejects an empty series", "[forecaster]") {
  CHECK_FALSE(Fit(std::vector<double>{}, {}).ok());
}

TEST_CASE("Short, constant and all-zero series fall back to simple models", "[forecaster]") {
  for (const std::vector<double>& y :
       {std::vector<double>{3, 4, 5}, std::vector<double>(50, 0.0), std::vector<double>(30, 7.0)}) {
    FitOptions o;
    o.periods = {24};
    auto m = Fit(y, o);
    REQUIRE(m.ok());
    auto f = (*m)->Predict(5, 95);
    REQUIRE(f.ok());
    CHECK(f->mean.size() == 5);
    CHECK(f->mean[0] == Approx(y.back()));
  }
}

TEST_CASE("Sparse series with zeros fit and forecast finite values", "[forecaster]") {
  std::mt19937_64 rng(11);
  std::poisson_distribution<int> count(0.3);
  std::vector<double> y;
  for (int t = 0; t < 500; ++t) y.push_back(count(rng));
  FitOptions o;
  o.periods = {24};
  auto m = Fit(y, o);
  REQUIRE(m.ok());
  auto f = (*m)->Predict(48, 95);
  REQUIRE(f.ok());
  for (double v : f->upper) CHECK(std::isfinite(v));
}

TEST_CASE("Gaps (NaN) are interpolated", "[forecaster]") {
  std::vector<double> y;
  for (int t = 0; t < 100; ++t) y.push_back(10 + (t % 5));
  y[40] = NAN;
  y[41] = NAN;
  auto m = Fit(y, {});
  REQUIRE(m.ok());
  CHECK((*m)->Predict(3, 80).ok());
}

TEST_CASE("Daily cycle at m = 1440 is handled by the decomposition model", "[forecaster]") {
  std::vector<double> y = PerMinute(4, 5);
  FitOptions o;
  o.periods = {1440};
  o.family = ModelFamily::kDecompEts;
  auto m = Fit(y, o);
  REQUIRE(m.ok());
  CHECK((*m)->Family() == "decomp_ets");
  auto f = (*m)->Predict(1440, 95);
  REQUIRE(f.ok());
  double mae = 0;
  for (int h = 0; h < 1440; ++h) {
    const int t = 4 * 1440 + h;
    mae += std::fabs(f->mean[h] - (50 + 40 * std::sin(2 * M_PI * t / 1440.0))) / 1440;
  }
  CHECK(mae < 6.0);
  // Auto selection also picks a seasonal model over naive.
  o.family = ModelFamily::kAuto;
  auto a = Fit(y, o);
  REQUIRE(a.ok());
  CHECK((*a)->Family() != "naive");
}

TEST_CASE("The combination leaves out families far behind the best on the hold-out",
          "[forecaster]") {
  // Hourly counts with a strong daily cycle: the non-seasonal naive forecast
  // is many times worse on the hold-out than the seasonal families.
  std::mt19937_64 rng(3);
  std::vector<double> y;
  for (int t = 0; t < 20 * 24; ++t) {
    std::poisson_distribution<int> count(200 + 150 * std::sin(2 * M_PI * t / 24.0));
    y.push_back(count(rng));
  }
  FitOptions o;
  o.periods = {24};
  o.include_arima = false;
  o.combine = 4;  // every candidate: ETS, decomposition, seasonal naive, naive
  o.combine_within = 0;
  auto all = Fit(y, o);
  REQUIRE(all.ok());
  CHECK((*all)->Name().find("NAIVE)") != std::string::npos);
  o.combine_within = 1.5;
  auto near = Fit(y, o);
  REQUIRE(near.ok());
  CHECK((*near)->Name().find("NAIVE)") == std::string::npos);
  CHECK((*near)->Name().find(" + NAIVE") == std::string::npos);
  CHECK((*near)->Family() != "naive");
}

TEST_CASE("The combination is the median of its members, or their mean", "[forecaster]") {
  // Three flat members at 1, 2 and 100: one far-off member moves the mean,
  // not the median; with two members the median is their mean.
  auto members = [](std::vector<double> levels) {
    std::vector<std::unique_ptr<Model>> m;
    for (double v : levels) {
      std::vector<double> y(10, v);
      m.push_back(std::make_unique<SeasonalNaiveModel>(y, 1));
    }
    return m;
  };
  auto median = CombinationModel(members({1, 2, 100}), /*median=*/true).Predict(3, 95);
  REQUIRE(median.ok());
  CHECK(median->mean == std::vector<double>{2, 2, 2});
  auto mean = CombinationModel(members({1, 2, 100}), /*median=*/false).Predict(1, 95);
  REQUIRE(mean.ok());
  CHECK(mean->mean[0] == Approx(103.0 / 3));
  auto two = CombinationModel(members({1, 2, 100, 7}), /*median=*/true).Predict(1, 95);
  REQUIRE(two.ok());
  CHECK(two->mean[0] == Approx(4.5));
}

TEST_CASE("The automatic selection tries the seasonal naive forecast of every period",
          "[forecaster]") {
  std::vector<double> y;
  for (int t = 0; t < 24 * 7 * 3; ++t) y.push_back(10 + 5 * std::sin(2 * M_PI * t / 24.0) + t % 7);
  FitOptions o;
  o.periods = {24, 168};
  o.include_arima = false;
  o.combine_within = 0;
  o.snaive = SeasonalNaiveCandidates::kEveryPeriod;
  auto all = Fit(y, o);
  REQUIRE(all.ok());
  CHECK((*all)->Name().find("SNAIVE[24]") != std::string::npos);
  CHECK((*all)->Name().find("SNAIVE[168]") != std::string::npos);
  o.snaive = SeasonalNaiveCandidates::kLongest;
  auto longest = Fit(y, o);
  REQUIRE(longest.ok());
  CHECK((*longest)->Name().find("SNAIVE[24]") == std::string::npos);
  CHECK((*longest)->Name().find("SNAIVE[168]") != std::string::npos);
}

TEST_CASE("The default hold-out is a whole longest cycle once the history holds ten of them",
          "[forecaster]") {
  // Hourly, daily and weekly cycles; the weekend is lower.
  auto series = [](int n) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> noise(0, 1);
    std::vector<double> y;
    for (int t = 0; t < n; ++t) {
      const bool weekend = (t / 24) % 7 >= 5;
      y.push_back(100 + 20 * std::sin(2 * M_PI * t / 24.0) - (weekend ? 30 : 0) + noise(rng));
    }
    return y;
  };
  auto mean = [](const std::vector<double>& y, const FitOptions& o) {
    auto m = Fit(y, o);
    REQUIRE(m.ok());
    auto f = (*m)->Predict(48, 95);
    REQUIRE(f.ok());
    return f->mean;
  };
  FitOptions o;
  o.periods = {24, 168};
  o.include_arima = false;
  FitOptions whole = o;
  whole.holdout = 168;
  FitOptions day = o;
  day.holdout = 48;
  for (int cycles : {9, kWholeCycleHoldoutCycles}) {
    const std::vector<double> y = series(cycles * 168);
    CHECK(mean(y, o) == mean(y, cycles >= kWholeCycleHoldoutCycles ? whole : day));
  }
}

TEST_CASE("Update keeps every model family current", "[forecaster]") {
  std::vector<double> y = PerMinute(3, 9);
  for (ModelFamily fam : {ModelFamily::kEts, ModelFamily::kDecompEts, ModelFamily::kSeasonalNaive,
                          ModelFamily::kNaive, ModelFamily::kArima, ModelFamily::kAuto}) {
    FitOptions o;
    o.periods = {1440};
    o.family = fam;
    auto m = Fit(std::span<const double>(y.data(), 2 * 1440 + 100), o);
    REQUIRE(m.ok());
    for (int t = 2 * 1440 + 100; t < 3 * 1440; ++t) (*m)->Update(y[t]);
    (*m)->Update(NAN);  // A missing bucket does not break the state.
    auto f = (*m)->Predict(10, 95);
    REQUIRE(f.ok());
    for (double v : f->mean) CHECK(std::isfinite(v));
  }
}

TEST_CASE("Seasonal naive repeats the last cycle", "[forecaster]") {
  std::vector<double> y = {1, 2, 3, 4, 5, 6};
  SeasonalNaiveModel m(y, 3);
  auto f = m.Predict(4, 95);
  REQUIRE(f.ok());
  CHECK(f->mean == std::vector<double>{4, 5, 6, 4});
  m.Update(10);
  CHECK(m.Predict(1, 95)->mean[0] == 5);
}

TEST_CASE("ParseModelFamily", "[forecaster]") {
  CHECK(*ParseModelFamily("auto") == ModelFamily::kAuto);
  CHECK(*ParseModelFamily("ETS") == ModelFamily::kEts);
  CHECK_FALSE(ParseModelFamily("prophet").ok());
}

TEST_CASE("ShortestCycle finds a burst's period, not a smooth series's decay") {
  // A burst at minute 5 of each hour, 60 s buckets, 6 hours.
  std::vector<double> burst;
  for (int t = 0; t < 360; ++t) burst.push_back(t % 60 == 5 ? 120 : 0);
  const std::vector<int> candidates = {15, 30, 60, 120, 180};
  CHECK(Autocorrelation(burst, 60) > 0.8);
  CHECK(std::abs(Autocorrelation(burst, 30)) < 0.1);
  CHECK(ShortestCycle(burst, candidates) == 60);  // not its multiples 120 and 180
  // Four cycles are needed: 3.5 hours are not enough.
  CHECK(ShortestCycle(std::span(burst).first(210), candidates) == 0);
  // A smooth daily cycle is autocorrelated at every short lag, and less so at
  // each longer one: no cycle among the candidates.
  std::vector<double> smooth;
  for (int t = 0; t < 3 * 1440; ++t) smooth.push_back(100 + 50 * std::sin(2 * M_PI * t / 1440));
  CHECK(Autocorrelation(smooth, 60) > 0.9);
  CHECK(ShortestCycle(smooth, candidates) == 0);
  // Noise has none either; a constant series has no autocorrelation.
  std::mt19937 rng(3);
  std::poisson_distribution<int> poisson(20);
  std::vector<double> noise;
  for (int t = 0; t < 1000; ++t) noise.push_back(poisson(rng));
  CHECK(ShortestCycle(noise, candidates) == 0);
  CHECK(Autocorrelation(std::vector<double>(100, 5.0), 10) == 0);
}

}  // namespace
}  // namespace ppe::forecast
