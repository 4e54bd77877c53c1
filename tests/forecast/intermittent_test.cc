// Intermittent demand (ppe-service/forecast/intermittent.h): Croston checked
// against R's forecast::croston on fixed and random sparse series, SBA and
// TSB against their definitions, the interval, and the automatic
// forecaster's choice for mostly-zero series.

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "ppe-service/forecast/forecaster.h"
#include "ppe-service/forecast/intermittent.h"

namespace ppe::forecast {
namespace {

double CrostonMean(const std::vector<double>& y, IntermittentMethod m, double alpha = 0.1) {
  auto model = IntermittentModel::Fit(y, m, alpha);
  REQUIRE(model.ok());
  return (*model)->Predict(1, 95)->mean[0];
}

TEST_CASE("Croston by hand: sizes 3, 5, 2 after intervals 3, 2, 3") {
  // Sizes smoothed from the first (alpha 0.1): 3 -> 3.2 -> 3.08; intervals
  // 3 -> 2.9 -> 2.91; forecast 3.08 / 2.91.
  const std::vector<double> y = {0, 0, 3, 0, 5, 0, 0, 2};
  CHECK(CrostonMean(y, IntermittentMethod::kCroston) == Approx(3.08 / 2.91).epsilon(1e-12));
  CHECK(CrostonMean(y, IntermittentMethod::kSba) == Approx(0.95 * 3.08 / 2.91).epsilon(1e-12));
}

TEST_CASE("TSB: the probability of demand decays while demand is absent") {
  std::vector<double> y = {0, 4, 0, 0, 4, 0, 4, 0, 0, 0};
  auto before = IntermittentModel::Fit(y, IntermittentMethod::kTsb);
  REQUIRE(before.ok());
  const double p = (*before)->Probability();
  (*before)->Update(0);
  CHECK((*before)->Probability() == Approx(0.9 * p));
  CHECK((*before)->Mean() == Approx(0.9 * p * 4));
  // Croston keeps its forecast through zeros.
  auto croston = IntermittentModel::Fit(y, IntermittentMethod::kCroston);
  const double m = (*croston)->Mean();
  (*croston)->Update(0);
  CHECK((*croston)->Mean() == m);
}

TEST_CASE("the interval: zero while demand is rarer than the upper tail") {
  // Demand every 2nd bucket (p = 0.5): the 97.5% point is a size; every 50th
  // (p = 0.02 < 2.5%): zero.
  std::vector<double> often, rare;
  for (int t = 0; t < 200; ++t) {
    often.push_back(t % 2 ? 10 + t % 3 : 0);
    rare.push_back(t % 50 == 49 ? 7 : 0);
  }
  auto a = IntermittentModel::Fit(often, IntermittentMethod::kSba);
  auto b = IntermittentModel::Fit(rare, IntermittentMethod::kSba);
  CHECK(a.ok());
  CHECK(b.ok());
  CHECK((*a)->Predict(3, 95)->upper[2] == 12);
  CHECK((*b)->Predict(3, 95)->upper[0] == 0);
  CHECK((*b)->Mean() > 0);
}

TEST_CASE("Croston's bound falls to zero once demand has been absent long enough") {
  std::vector<double> y(20, 0.0);
  for (int t = 0; t < 20; t += 2) y[t] = 5;  // every 2nd bucket
  auto m = IntermittentModel::Fit(y, IntermittentMethod::kCroston);
  REQUIRE(m.ok());
  const double mean = (*m)->Mean();
  CHECK((*m)->Predict(1, 95)->upper[0] == 5);
  // The series ends one bucket after a demand; 37 more zeros: 38 buckets
  // since, 1/39 > 2.5%: still a size. One more: 1/40, not above 2.5%.
  for (int t = 0; t < 37; ++t) (*m)->Update(0);
  CHECK((*m)->Predict(1, 95)->upper[0] == 5);
  (*m)->Update(0);
  CHECK((*m)->Predict(1, 95)->upper[0] == 0);
  CHECK((*m)->Mean() == mean);  // the point forecast is Croston's
}

TEST_CASE("the automatic forecaster uses an intermittent method for mostly-zero series") {
  std::vector<double> y;
  for (int t = 0; t < 300; ++t) y.push_back(t % 7 == 3 ? 2 : 0);
  auto model = Fit(y, {});
  REQUIRE(model.ok());
  CHECK((*model)->Family() == "intermittent");
  std::vector<double> dense;
  for (int t = 0; t < 300; ++t) dense.push_back(5 + t % 4);
  CHECK((*Fit(dense, {}))->Family() != "intermittent");
}

TEST_CASE("seasonal sparse model by hand: per phase, the last cycles' mean, lowest and highest") {
  // Period 3, three cycles kept: phase 1 saw 2, 4, 3; phases 0 and 2 nothing.
  auto m = SeasonalSparseModel::Fit(std::vector<double>{0, 2, 0, 0, 4, 0, 0, 3, 0}, 3, 3);
  REQUIRE(m.ok());
  auto f = (*m)->Predict(3, 95);
  REQUIRE(f.ok());
  CHECK(f->mean == std::vector<double>{0, 3, 0});
  CHECK(f->lower == std::vector<double>{0, 2, 0});
  CHECK(f->upper == std::vector<double>{0, 4, 0});
  // A new cycle pushes out the oldest (phase 1's 2).
  for (double v : {0.0, 8.0, 0.0}) (*m)->Update(v);
  f = (*m)->Predict(2, 95);
  CHECK(f->mean[1] == 5);
  CHECK(f->lower[1] == 3);
  CHECK(f->upper[1] == 8);
  CHECK_FALSE(SeasonalSparseModel::Fit(std::vector<double>{0, 1, 0}, 3, 3).ok());
}

TEST_CASE("sparse demand at one phase of a period gets the seasonal sparse model") {
  // Arrivals in one minute of each hour (the access log's :05), 6 hours.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> size(18, 24);
  std::vector<double> burst;
  for (int t = 0; t < 6 * 60; ++t) burst.push_back(t % 60 == 5 ? size(rng) : 0);
  FitOptions hourly;
  hourly.periods = {60};
  auto model = Fit(burst, hourly);
  REQUIRE(model.ok());
  CHECK((*model)->Name() == "SEASONAL-SPARSE[60x3]");
  // At the end of hour 6 the next bucket is phase 0: phase 5 is 6 ahead.
  auto f = (*model)->Predict(7, 95);
  REQUIRE(f.ok());
  CHECK(f->upper[5] == *std::max_element(burst.end() - 180, burst.end()));
  CHECK(f->mean[5] >= 18);
  for (int h : {0, 1, 2, 3, 4, 6}) CHECK(f->upper[h] == 0);
  // As a sparse-only period (the scaler's clock cycles for arrivals) too.
  FitOptions sparse_only;
  sparse_only.sparse_periods = {60};
  CHECK((*Fit(burst, sparse_only))->Name() == "SEASONAL-SPARSE[60x3]");
  // Without the period, or with fewer than four cycles of it, Croston's family.
  CHECK((*Fit(burst, {}))->Name() != "SEASONAL-SPARSE[60x3]");
  std::vector<double> short_burst(burst.begin(), burst.begin() + 3 * 60 + 30);
  CHECK((*Fit(short_burst, hourly))->Name() != "SEASONAL-SPARSE[60x3]");
  // Demand that falls at random keeps Croston's family, period or not.
  std::bernoulli_distribution demand(0.1);
  std::vector<double> random;
  for (int t = 0; t < 6 * 60; ++t) random.push_back(demand(rng) ? 1 : 0);
  auto r = Fit(random, hourly);
  REQUIRE(r.ok());
  CHECK(((*r)->Name() == "CROSTON" || (*r)->Name() == "SBA" || (*r)->Name() == "TSB"));
}

TEST_CASE("Croston matches R's forecast::croston") {
  if (std::system("Rscript -e 'suppressMessages(library(forecast))' >/dev/null 2>&1") != 0) {
    WARN("Rscript with the forecast package (r-cran-forecast) is not installed: skipped");
    return;
  }
  std::mt19937_64 rng(17);
  std::vector<std::vector<double>> series;
  for (int k = 0; k < 20; ++k) {
    std::bernoulli_distribution demand(0.05 + 0.02 * k);
    std::poisson_distribution<int> size(1 + k);
    std::vector<double> y;
    for (int t = 0; t < 60 + 10 * k; ++t) y.push_back(demand(rng) ? 1 + size(rng) : 0);
    if (std::count_if(y.begin(), y.end(), [](double v) { return v > 0; }) >= 2) {
      series.push_back(y);
    }
  }
  char dir[] = "/tmp/croston_XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string in = std::string(dir) + "/series.txt", out = std::string(dir) + "/r.txt";
  {
    std::ofstream f(in);
    for (const auto& y : series) {
      for (size_t i = 0; i < y.size(); ++i) f << (i ? " " : "") << y[i];
      f << "\n";
    }
  }
  const std::string script =
      "suppressMessages(library(forecast)); "
      "for (l in readLines('" +
      in +
      "')) { y <- as.numeric(strsplit(l, ' ')[[1]]); "
      "for (a in c(0.1, 0.3)) cat(sprintf('%.15g\\n', croston(ts(y), h = 1, alpha = a)$mean[1]), "
      "file = '" +
      out + "', append = TRUE) }";
  REQUIRE(std::system(("Rscript -e \"" + script + "\" >/dev/null 2>&1").c_str()) == 0);
  std::ifstream r(out);
  int compared = 0;
  for (const auto& y : series) {
    for (double alpha : {0.1, 0.3}) {
      double expected = NAN;
      REQUIRE(r >> expected);
      CHECK(CrostonMean(y, IntermittentMethod::kCroston, alpha) == Approx(expected).epsilon(1e-9));
      ++compared;
    }
  }
  CHECK(compared == 2 * static_cast<int>(series.size()));
  std::remove(in.c_str());
  std::remove(out.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace ppe::forecast
