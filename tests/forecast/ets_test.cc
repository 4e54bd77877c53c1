#include "ppe-service/forecast/ets.h"

#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace ppe::forecast {
namespace {

// Seasonal series with level, trend and noise (deterministic).
std::vector<double> Seasonal(int n, int m, double noise_sd, double trend, uint64_t seed,
                             bool multiplicative = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, noise_sd);
  std::vector<double> y(n);
  for (int t = 0; t < n; ++t) {
    const double s = std::sin(2 * M_PI * t / m) + 0.5 * std::cos(4 * M_PI * t / m);
    const double level = 100 + trend * t;
    y[t] = multiplicative ? level * (1 + 0.3 * s) * (1 + noise(rng) / 100)
                          : level + 20 * s + noise(rng);
  }
  return y;
}

TEST_CASE("EtsSpec parses and names models", "[ets]") {
  auto s = EtsSpec::Parse("MAdA", 24);
  REQUIRE(s.ok());
  CHECK(s->Name() == "ETS(M,Ad,A)[24]");
  CHECK(s->NumStates() == 26);
  CHECK(EtsSpec::Parse("A,N,N", 1)->Name() == "ETS(A,N,N)");
  CHECK_FALSE(EtsSpec::Parse("XNN", 1).ok());
  CHECK_FALSE(EtsSpec::Parse("AMN", 1).ok());  // Multiplicative trend not supported.
  CHECK_FALSE(EtsSpec::Parse("ANA", 1).ok());  // Seasonal needs a period.
}

TEST_CASE("Simple exponential smoothing recursion by hand", "[ets]") {
  EtsSpec spec = *EtsSpec::Parse("ANN", 1);
  EtsParameters p;
  p.alpha = 0.5;
  std::vector<double> y = {2, 4, 3};
  std::vector<double> x0 = {1};
  auto r = EtsFilter(spec, p, x0, y, true);
  REQUIRE(r.ok());
  // l: 1 -> 1.5 -> 2.75 -> 2.875; errors 1, 2.5, 0.25.
  CHECK(r->final_state[0] == Approx(2.875));
  CHECK(r->residuals[1] == Approx(2.5));
  CHECK(r->lik == Approx(3 * std::log(1 + 6.25 + 0.0625)));
  CHECK(r->states.size() == 4);
}

TEST_CASE("Admissibility test agrees with polynomial roots", "[ets]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  int disagreements = 0;
  for (int i = 0; i < 500; ++i) {
    const int m = i % 2 ? 24 : 7;
    EtsSpec spec{Component::kAdditive, Component::kAdditive, Component::kAdditive, true, m};
    EtsParameters p;
    p.alpha = u(rng);
    p.beta = u(rng) * p.alpha;
    p.gamma = u(rng) * (1 - p.alpha);
    p.phi = 0.8 + 0.2 * u(rng);
    std::vector<double> c(m + 2);
    const double a = p.alpha, b = p.beta, g = p.gamma, phi = p.phi;
    c[0] = phi * (1 - a - g);
    c[1] = a + b - a * phi + g - 1;
    for (int k = 2; k < m; ++k) c[k] = a + b - a * phi;
    c[m] = a + b - phi;
    c[m + 1] = 1;
    Eigen::MatrixXd comp = Eigen::MatrixXd::Zero(m + 1, m + 1);
    for (int k = 1; k <= m; ++k) comp(k, k - 1) = 1;
    for (int k = 0; k <= m; ++k) comp(k, m) = -c[k];
    const double radius =
        Eigen::EigenSolver<Eigen::MatrixXd>(comp, false).eigenvalues().cwiseAbs().maxCoeff();
    const bool easy = !(g < std::max(1 - 1 / phi - a, 0.0) || g > 1 + 1 / phi - a ||
                        a < 1 - 1 / phi - g * (1 - m + phi + phi * m) / (2 * phi * m) ||
                        b < -(1 - phi) * (g / m + a));
    const bool expected = easy && radius <= 1 + 1e-10;
    if (std::fabs(radius - 1) > 1e-8 && expected != EtsAdmissible(spec, p)) ++disagreements;
  }
  CHECK(disagreements == 0);
}

TEST_CASE("Update after a fit equals filtering the whole series", "[ets]") {
  std::vector<double> y = Seasonal(300, 12, 2.0, 0.1, 1);
  EtsSpec spec = *EtsSpec::Parse("AAdA", 12);
  auto fit = FitEts(std::span<const double>(y.data(), 250), spec);
  REQUIRE(fit.ok());
  for (int t = 250; t < 300; ++t) (*fit)->Update(y[t]);
  auto run = EtsFilter(spec, (*fit)->params(), (*fit)->initial_state(), y);
  REQUIRE(run.ok());
  const std::vector<double> state = (*fit)->State();
  REQUIRE(state.size() == run->final_state.size());
  for (size_t i = 0; i < state.size(); ++i) {
    CHECK(state[i] == Approx(run->final_state[i]).epsilon(1e-12).margin(1e-9));
  }
}

TEST_CASE("Maximum likelihood improves on the heuristic start and is bounded", "[ets]") {
  std::vector<double> y = Seasonal(400, 24, 3.0, 0.05, 2);
  for (const char* code : {"ANN", "AAN", "AAdN", "ANA", "AAdA", "MNM", "MAdM"}) {
    auto spec = EtsSpec::Parse(code, 24);
    REQUIRE(spec.ok());
    auto fit = FitEts(y, *spec);
    REQUIRE(fit.ok());
    const EtsParameters& p = (*fit)->params();
    CHECK(p.alpha >= 1e-4);
    CHECK(p.alpha <= 0.9999);
    if (spec->trend != Component::kNone) CHECK(p.beta <= p.alpha);
    if (spec->season != Component::kNone) CHECK(p.gamma <= 1 - p.alpha);
    if (spec->damped) CHECK((p.phi >= 0.8 && p.phi <= 0.98));
    CHECK(EtsAdmissible(*spec, p));
    CHECK(std::isfinite((*fit)->Aicc()));
  }
}

TEST_CASE("AICc selection finds the seasonality", "[ets]") {
  std::vector<double> y = Seasonal(360, 12, 1.0, 0.0, 3);
  auto fit = FitEtsAuto(y, 12);
  REQUIRE(fit.ok());
  CHECK((*fit)->spec().season != Component::kNone);
  auto f = (*fit)->Predict(24, 95);
  REQUIRE(f.ok());
  double err = 0;
  for (int h = 0; h < 24; ++h) {
    const int t = 360 + h;
    const double truth =
        100 + 20 * (std::sin(2 * M_PI * t / 12) + 0.5 * std::cos(4 * M_PI * t / 12));
    err += std::fabs(f->mean[h] - truth) / 24;
  }
  CHECK(err < 3.0);
}

TEST_CASE("Multiplicative models need positive data", "[ets]") {
  std::vector<double> y = Seasonal(200, 12, 1.0, 0.0, 4);
  y[10] = 0;
  CHECK_FALSE(FitEts(y, *EtsSpec::Parse("MNN", 1)).ok());
  auto fit = FitEtsAuto(y, 12);
  REQUIRE(fit.ok());
  CHECK((*fit)->spec().error == Component::kAdditive);
}

TEST_CASE("Prediction intervals contain the mean and widen", "[ets]") {
  std::vector<double> y = Seasonal(300, 12, 2.0, 0.0, 5, /*multiplicative=*/true);
  for (const char* code : {"AAdA", "MAdM"}) {
    auto fit = FitEts(y, *EtsSpec::Parse(code, 12));
    REQUIRE(fit.ok());
    auto f = (*fit)->Predict(37, 90);  // h = 1 and h = 37 share a phase.
    REQUIRE(f.ok());
    for (int h = 0; h < 37; ++h) {
      CHECK(f->lower[h] < f->mean[h]);
      CHECK(f->upper[h] > f->mean[h]);
    }
    CHECK(f->upper[36] - f->lower[36] > f->upper[0] - f->lower[0]);
    CHECK_FALSE((*fit)->Predict(0, 90).ok());
    CHECK_FALSE((*fit)->Predict(5, 100).ok());
  }
}

}  // namespace
}  // namespace ppe::forecast
