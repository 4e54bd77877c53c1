#include "ppe-service/forecast/arima.h"

#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "ppe-service/forecast/stats.h"

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

// Reference exact log-likelihood of a stationary ARMA (the test's own, dense
// textbook Kalman filter): Harvey's form, P0 = T P0 T' + R R' by doubling to
// convergence, full covariance update at every step, no steady-state shortcut.
double DenseKalmanLoglik(const std::vector<double>& x, std::vector<double> ar,
                         std::vector<double> ma, double mean) {
  const int r = static_cast<int>(std::max(ar.size(), ma.size() + 1));
  ar.resize(r, 0.0);
  ma.resize(r - 1, 0.0);
  Eigen::MatrixXd t = Eigen::MatrixXd::Zero(r, r);
  for (int i = 0; i < r; ++i) t(i, 0) = ar[i];
  for (int i = 0; i + 1 < r; ++i) t(i, i + 1) = 1;
  Eigen::VectorXd rv(r);
  rv(0) = 1;
  for (int j = 0; j + 1 < r; ++j) rv(j + 1) = ma[j];
  Eigen::MatrixXd p = rv * rv.transpose(), a = t;
  for (int k = 0; k < 200 && a.cwiseAbs().maxCoeff() > 1e-300; ++k) {
    p += a * p * a.transpose();
    a = a * a;
  }
  Eigen::VectorXd st = Eigen::VectorXd::Zero(r);
  double ssq = 0, sumlog = 0;
  for (double xt : x) {
    const double f = p(0, 0), v = xt - mean - st(0);
    ssq += v * v / f;
    sumlog += std::log(f);
    const Eigen::VectorXd k = t * p.col(0) / f;
    st = t * st + k * v;
    p = t * p * t.transpose() - k * f * k.transpose() + rv * rv.transpose();
  }
  const double n = static_cast<double>(x.size()), sigma2 = ssq / n;
  return -0.5 * (n * std::log(2 * M_PI * sigma2) + sumlog + n);
}

std::vector<double> PolyMul(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> c(a.size() + b.size() - 1, 0.0);
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) c[i + j] += a[i] * b[j];
  }
  return c;
}

TEST_CASE("Exact likelihood (Chandrasekhar recursions) matches a dense Kalman filter", "[arima]") {
  // A seasonal ARMA-like series (period 12) with persistent seasonal noise.
  std::mt19937_64 rng(11);
  std::normal_distribution<double> e(0.0, 1.0);
  std::vector<double> y, eps(600 + 24, 0.0);
  for (size_t t = 0; t < eps.size(); ++t) eps[t] = e(rng);
  std::vector<double> x(eps.size(), 0.0);
  for (size_t t = 13; t < eps.size(); ++t) {
    x[t] = 0.5 * x[t - 1] + 0.8 * x[t - 12] - 0.4 * x[t - 13] + eps[t] + 0.3 * eps[t - 1];
  }
  for (size_t t = 24; t < x.size(); ++t) y.push_back(20 + x[t]);
  const ArimaOrder orders[] = {{1, 0, 1, 0, 0, 0, 1, true},  {2, 0, 0, 1, 0, 1, 12, true},
                               {0, 0, 2, 0, 0, 1, 12, true}, {1, 0, 0, 2, 0, 0, 12, true},
                               {3, 0, 2, 1, 0, 2, 12, true}, {0, 0, 0, 0, 0, 2, 12, true}};
  for (const ArimaOrder& o : orders) {
    // exact = false: the CSS estimates, with their exact log-likelihood.
    auto m = FitArima(y, o, /*exact=*/false);
    REQUIRE(m.ok());
    const std::vector<double>& c = (*m)->coefficients();
    std::vector<double> phi = {1}, sphi = {1}, theta = {1}, stheta = {1};
    int k = 0;
    for (int i = 0; i < o.p; ++i) phi.push_back(-c[k++]);
    for (int i = 0; i < o.q; ++i) theta.push_back(c[k++]);
    for (int i = 0; i < o.sp; ++i) sphi.resize((i + 1) * o.period + 1, 0.0), sphi.back() = -c[k++];
    for (int i = 0; i < o.sq; ++i) {
      stheta.resize((i + 1) * o.period + 1, 0.0), stheta.back() = c[k++];
    }
    std::vector<double> ar_poly = PolyMul(phi, sphi), ma_poly = PolyMul(theta, stheta);
    std::vector<double> ar(ar_poly.begin() + 1, ar_poly.end()),
        ma(ma_poly.begin() + 1, ma_poly.end());
    for (double& v : ar) v = -v;
    INFO(o.Name());
    CHECK((*m)->LogLikelihood() ==
          Approx(DenseKalmanLoglik(y, ar, ma, (*m)->mean())).epsilon(1e-9));
  }
}

TEST_CASE("Root test: every root outside a given radius, as polynomial roots say", "[arima]") {
  // 1 - z / 1.005: one real root at 1.005.
  const std::vector<double> real_root = {-1 / 1.005};
  CHECK(RootsOutside(real_root, 1.0));
  CHECK_FALSE(RootsOutside(real_root, 1.01));
  // (1 - z / (1.02 e^{i t})) (1 - z / (1.02 e^{-i t})): complex roots of modulus 1.02.
  const double t = 0.7, rho = 1.02;
  const std::vector<double> complex_roots = {-2 * std::cos(t) / rho, 1 / (rho * rho)};
  CHECK(RootsOutside(complex_roots, 1.01));
  CHECK_FALSE(RootsOutside(complex_roots, 1.03));
  // Random polynomials against the eigenvalues of the companion matrix.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(-0.6, 0.6);
  for (int trial = 0; trial < 200; ++trial) {
    const int k = 1 + trial % 6;
    std::vector<double> c(k);
    for (double& v : c) v = u(rng);
    // Roots of 1 + c1 z + ... + ck z^k are the inverses of the eigenvalues of
    // the companion matrix of z^k + c1 z^(k-1) + ... + ck.
    Eigen::MatrixXd comp = Eigen::MatrixXd::Zero(k, k);
    for (int j = 0; j < k; ++j) comp(0, j) = -c[j];
    for (int j = 1; j < k; ++j) comp(j, j - 1) = 1;
    const double max_inverse_root = comp.eigenvalues().cwiseAbs().maxCoeff();
    for (double radius : {1.0, 1.01, 1.2}) {
      if (std::fabs(max_inverse_root * radius - 1) < 1e-9) continue;
      INFO("trial " << trial << " radius " << radius);
      CHECK(RootsOutside(c, radius) == (max_inverse_root * radius < 1));
    }
  }
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

TEST_CASE("A daily cycle that changes shape over the history is differenced seasonally",
          "[arima]") {
  // 40 days whose cycle turns from a sine into its mirror image: one fixed
  // seasonal figure averages it away (the classical seasonal strength is
  // about 0), a local one per phase, as R's STL test, does not.
  std::mt19937_64 rng(5);
  std::normal_distribution<double> e(0.0, 1.0);
  std::vector<double> y;
  const int days = 40;
  for (int t = 0; t < 24 * days; ++t) {
    const double shape = std::cos(M_PI * t / (24.0 * days));  // 1 -> -1
    y.push_back(100 + 20 * shape * std::sin(2 * M_PI * t / 24) + e(rng));
  }
  ArimaAutoOptions o;
  o.period = 24;
  auto m = FitArimaAuto(y, o);
  REQUIRE(m.ok());
  CHECK((*m)->order().sd == 1);
}

TEST_CASE("ARIMA rejects too short series", "[arima]") {
  std::vector<double> y = {1, 2, 3, 4, 5};
  CHECK_FALSE(FitArimaAuto(y, {}).ok());
  CHECK_FALSE(FitArima(y, ArimaOrder{3, 0, 3, 0, 0, 0, 1, true}).ok());
}

}  // namespace
}  // namespace ppe::forecast
