#include "ppe-service/forecast/arima.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace ppe::forecast {
namespace {

// x_t = mu + phi (x_{t-1} - mu) + e_t + theta e_{t-1}.
std::vector<double> Arma11(int n, double phi, double theta, double mu, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> e(0.0, 1.0);
  std::vector<double> y;
  double x = 0, prev_e = 0;
  for (int t = 0; t < n + 100; ++t) {
    const double et = e(rng);
    x = phi * x + et + theta * prev_e;
    prev_e = et;
    if (t >= 100) y.push_back(mu + x);
  }
  return y;
}

TEST_CASE("ARIMA order names follow R", "[arima]") {
  CHECK(ArimaOrder{1, 1, 1, 0, 1, 1, 24, false}.Name() == "ARIMA(1,1,1)(0,1,1)[24]");
  CHECK(ArimaOrder{2, 0, 0, 0, 0, 0, 1, true}.Name() == "ARIMA(2,0,0) with non-zero mean");
  CHECK(ArimaOrder{0, 1, 1, 0, 0, 0, 1, true}.Name() == "ARIMA(0,1,1) with drift");
}

TEST_CASE("Exact ML recovers ARMA(1,1) coefficients", "[arima]") {
  std::vector<double> y = Arma11(2000, 0.7, 0.3, 10.0, 1);
  auto m = FitArima(y, ArimaOrder{1, 0, 1, 0, 0, 0, 1, true});
  REQUIRE(m.ok());
  const std::vector<double>& c = (*m)->coefficients();
  CHECK(c[0] == Approx(0.7).margin(0.06));
  CHECK(c[1] == Approx(0.3).margin(0.08));
  CHECK((*m)->mean() == Approx(10.0).margin(0.3));
  CHECK((*m)->Sigma2() == Approx(1.0).margin(0.1));
}

TEST_CASE("Automatic ARIMA differences a random walk and forecasts it flat", "[arima]") {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> e(0.0, 1.0);
  std::vector<double> y = {100};
  for (int t = 1; t < 400; ++t) y.push_back(y.back() + e(rng));
  auto m = FitArimaAuto(y, ArimaAutoOptions{});
  REQUIRE(m.ok());
  CHECK((*m)->order().d == 1);
  auto f = (*m)->Predict(10, 95);
  REQUIRE(f.ok());
  CHECK(std::fabs(f->mean[0] - y.back()) < 3.0);
  CHECK(f->upper[9] - f->lower[9] > f->upper[0] - f->lower[0]);
}

TEST_CASE("Seasonal ARIMA on a seasonal series, updated in O(1)", "[arima]") {
  std::mt19937_64 rng(4);
  std::normal_distribution<double> e(0.0, 1.0);
  std::vector<double> y;
  for (int t = 0; t < 24 * 30; ++t) y.push_back(50 + 10 * std::sin(2 * M_PI * t / 24) + e(rng));
  ArimaAutoOptions o;
  o.period = 24;
  auto m = FitArimaAuto(std::span<const double>(y.data(), 24 * 28), o);
  REQUIRE(m.ok());
  CHECK((*m)->order().period == 24);
  for (size_t t = 24 * 28; t < y.size(); ++t) (*m)->Update(y[t]);
  auto f = (*m)->Predict(24, 95);
  REQUIRE(f.ok());
  double mae = 0;
  for (int h = 0; h < 24; ++h) {
    mae += std::fabs(f->mean[h] - (50 + 10 * std::sin(2 * M_PI * (24 * 30 + h) / 24))) / 24;
  }
  CHECK(mae < 1.5);
}

TEST_CASE("ARIMA rejects too short series", "[arima]") {
  std::vector<double> y = {1, 2, 3, 4, 5};
  CHECK_FALSE(FitArimaAuto(y, {}).ok());
  CHECK_FALSE(FitArima(y, ArimaOrder{3, 0, 3, 0, 0, 0, 1, true}).ok());
}

}  // namespace
}  // namespace ppe::forecast
