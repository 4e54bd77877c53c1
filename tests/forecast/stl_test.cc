// Unit tests of STL, MSTL, the stlf-style model and pooling (stl.h). The
// comparison with R's stl / mstl is tests/forecast/stl_vs_r_test.cc.

#include "ppe-service/forecast/stl.h"

#include <cmath>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "ppe-service/forecast/forecaster.h"

namespace ppe::forecast {
namespace {

// Level 100 + slope, a daily (24) and a weekly (168) sine, Gaussian noise.
std::vector<double> TwoSeasons(int n, double noise, unsigned seed = 7) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> e(0, noise);
  std::vector<double> y(n);
  for (int t = 0; t < n; ++t) {
    y[t] = 100 + 0.01 * t + 20 * std::sin(2 * M_PI * t / 24) + 10 * std::sin(2 * M_PI * t / 168) +
           e(rng);
  }
  return y;
}

TEST_CASE("Stl: components add up and recover a known seasonal pattern", "[stl]") {
  std::vector<double> y(240);
  for (int t = 0; t < 240; ++t) y[t] = 50 + 0.2 * t + 5 * std::sin(2 * M_PI * t / 12);
  StlOptions o;
  o.period = 12;
  o.s_window = 7;
  auto r = Stl(y, o);
  REQUIRE(r.ok());
  double worst = 0;
  for (int t = 0; t < 240; ++t) {
    REQUIRE(r->seasonal[t] + r->trend[t] + r->remainder[t] == Approx(y[t]).margin(1e-9));
    // Away from the ends the seasonal is the sine and the trend the line.
    if (t >= 24 && t < 216) {
      worst = std::max(worst, std::fabs(r->seasonal[t] - 5 * std::sin(2 * M_PI * t / 12)));
    }
  }
  CHECK(worst < 0.05);
  for (double w : r->weights) CHECK(w == 1.0);
}

TEST_CASE("Stl: periodic seasonal repeats exactly; robust down-weights an outlier", "[stl]") {
  std::vector<double> y = TwoSeasons(24 * 20, 1.0);
  StlOptions o;
  o.period = 24;
  o.s_periodic = true;
  auto r = Stl(y, o);
  REQUIRE(r.ok());
  for (size_t t = 24; t < y.size(); ++t) CHECK(r->seasonal[t] == r->seasonal[t - 24]);

  y[200] += 500;
  o.s_periodic = false;
  o.s_window = 11;
  o.robust = true;
  auto robust = Stl(y, o);
  REQUIRE(robust.ok());
  CHECK(robust->weights[200] == 0.0);
  CHECK(robust->remainder[200] > 450);
}

TEST_CASE("Stl: bad input is rejected", "[stl]") {
  std::vector<double> y(24, 1.0);
  StlOptions o;
  o.period = 12;
  o.s_window = 7;
  CHECK(Stl(y, o).status().code() == absl::StatusCode::kInvalidArgument);  // n <= 2 period
  y.resize(100, 1.0);
  o.s_window = 0;
  CHECK(!Stl(y, o).ok());  // no s_window
  o.s_window = 7;
  o.t_degree = 2;
  CHECK(!Stl(y, o).ok());
  o.t_degree = 1;
  y[5] = NAN;
  CHECK(!Stl(y, o).ok());
}

TEST_CASE("Mstl: separates daily and weekly cycles", "[stl]") {
  std::vector<double> y = TwoSeasons(168 * 6, 0.5);
  MstlOptions o;
  o.periods = {168, 24};
  auto r = Mstl(y, o);
  REQUIRE(r.ok());
  REQUIRE(r->periods == std::vector<int>{24, 168});
  double daily = 0, weekly = 0;
  for (int t = 168; t < 168 * 5; ++t) {
    daily = std::max(daily, std::fabs(r->seasonal[0][t] - 20 * std::sin(2 * M_PI * t / 24)));
    weekly = std::max(weekly, std::fabs(r->seasonal[1][t] - 10 * std::sin(2 * M_PI * t / 168)));
    REQUIRE(r->trend[t] + r->seasonal[0][t] + r->seasonal[1][t] + r->remainder[t] ==
            Approx(y[t]).margin(1e-9));
  }
  CHECK(daily < 1.5);
  CHECK(weekly < 2.0);
  // A period with fewer than two cycles is dropped, as R does.
  o.periods = {24, 168, 2000};
  auto dropped = Mstl(y, o);
  REQUIRE(dropped.ok());
  CHECK(dropped->periods == std::vector<int>{24, 168});
}

TEST_CASE("Box-Cox round trip", "[stl]") {
  for (double lambda : {0.0, 0.5, 1.0, -0.3}) {
    for (double x : {0.5, 3.0, 1000.0}) CHECK(InvBoxCox(BoxCox(x, lambda), lambda) == Approx(x));
  }
  CHECK(std::isnan(BoxCox(-1, -0.5)));
}

TEST_CASE("FitStl forecasts both cycles; Update keeps the phase", "[stl]") {
  const int n = 168 * 6;
  std::vector<double> all = TwoSeasons(n + 48, 0.5);
  std::vector<double> y(all.begin(), all.begin() + n);
  StlModelOptions o;
  o.mstl.periods = {24, 168};
  auto m = FitStl(y, o);
  REQUIRE(m.ok());
  CHECK((*m)->Name().rfind("MSTL(24,168)+ETS", 0) == 0);
  auto f = (*m)->Predict(48, 95);
  REQUIRE(f.ok());
  double mae = 0;
  for (int h = 0; h < 48; ++h) {
    mae += std::fabs(f->mean[h] - all[n + h]) / 48;
    CHECK(f->lower[h] <= f->mean[h]);
    CHECK(f->upper[h] >= f->mean[h]);
  }
  CHECK(mae < 2.0);  // The seasonal swing is +-30.
  // After 24 updates the next forecast is that of step 25 of the old one.
  auto copy = (*m)->Clone();
  for (int h = 0; h < 24; ++h) copy->Update(all[n + h]);
  auto g = copy->Predict(1, 95);
  REQUIRE(g.ok());
  CHECK(g->mean[0] == Approx(all[n + 24]).margin(3.0));

  o.method = StlMethod::kArima;
  auto a = FitStl(y, o);
  REQUIRE(a.ok());
  CHECK((*a)->Name().find("ARIMA") != std::string::npos);

  o.method = StlMethod::kEts;
  o.mstl.lambda = 0.0;
  auto logged = FitStl(y, o);
  REQUIRE(logged.ok());
  auto lf = (*logged)->Predict(48, 95);
  REQUIRE(lf.ok());
  for (int h = 0; h < 48; ++h) CHECK(lf->mean[h] == Approx(all[n + h]).margin(6.0));
}

TEST_CASE("Automatic forecaster uses STL for long or several periods", "[stl]") {
  std::vector<double> y = TwoSeasons(168 * 6, 0.5);
  FitOptions o;
  o.periods = {24, 168};
  o.family = ModelFamily::kStl;
  auto m = Fit(y, o);
  REQUIRE(m.ok());
  CHECK((*m)->Family() == "stl");
  REQUIRE(ParseModelFamily("mstl").ok());
  CHECK(*ParseModelFamily("stl") == ModelFamily::kStl);
  o.family = ModelFamily::kAuto;
  o.combine = 1;
  auto a = Fit(y, o);
  REQUIRE(a.ok());
  // On this series (two clean cycles) the MSTL model wins the hold-out.
  CHECK((*a)->Family() == "stl");
}

TEST_CASE("Pooling: a sparse series gets its aggregate's daily peak", "[stl][pooling]") {
  // Aggregate: 10 days of hourly demand peaking at hour 18 (3x the night).
  std::vector<double> aggregate(240);
  for (int t = 0; t < 240; ++t) {
    aggregate[t] = 100 + 80 * std::cos(2 * M_PI * (t % 24 - 18) / 24.0);
  }
  const int64_t origin = 1000 * 24;  // Absolute bucket of the aggregate's first value.
  auto shape = SeasonalShapeOf(aggregate, {24}, origin);
  REQUIRE(shape.ok());
  CHECK(shape->At(origin + 18) == Approx(1.8).margin(0.05));
  CHECK(shape->At(origin + 6) == Approx(0.2).margin(0.05));
  CHECK(shape->At(origin + 240 + 18) == Approx(shape->At(origin + 18)));
  // The profile was seen only for the 6 night hours 0-5 of the last day, at
  // 1/50 of the aggregate.
  std::vector<double> profile;
  for (int t = 0; t < 6; ++t) profile.push_back(aggregate[216 + t] / 50);
  auto f = PooledForecast(profile, origin + 216, *shape, 24, 95);
  REQUIRE(f.ok());
  // Forecast for hours 6..29: the peak at hour 18 (index 12) is 180 / 50.
  CHECK(f->mean[12] == Approx(180.0 / 50).margin(0.2));
  CHECK(f->mean[0] == Approx(aggregate[222] / 50).margin(0.2));
  CHECK(f->upper[12] > f->mean[12]);
  CHECK(!PooledForecast({}, 0, *shape, 4, 95).ok());
}

}  // namespace
}  // namespace ppe::forecast
