#include "ppe-service/forecast/least_squares.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

namespace ppe::forecast {
namespace {

// Rosenbrock as residuals: r = (10 (x1 - x0^2), 1 - x0); minimum 0 at (1, 1).
bool Rosenbrock(std::span<const double> x, std::span<double> r) {
  r[0] = 10 * (x[1] - x[0] * x[0]);
  r[1] = 1 - x[0];
  return true;
}

TEST_CASE("Levenberg-Marquardt finds the Rosenbrock minimum", "[least_squares]") {
  LeastSquaresResult r = MinimizeSumOfSquares(Rosenbrock, 2, {-1.2, 1.0}, {});
  CHECK(r.sum_squares < 1e-16);
  CHECK(r.x[0] == Approx(1).margin(1e-6));
  CHECK(r.x[1] == Approx(1).margin(1e-6));
  CHECK(r.iterations < 100);
}

TEST_CASE("A bound holds the solution on the box", "[least_squares]") {
  LeastSquaresOptions o;
  o.lower = {-2, -2};
  o.upper = {0.5, 2};
  LeastSquaresResult r = MinimizeSumOfSquares(Rosenbrock, 2, {-1.2, 1.0}, o);
  // Constrained optimum: x0 = 0.5 on its bound, x1 = x0^2.
  CHECK(r.x[0] == 0.5);
  CHECK(r.x[1] == Approx(0.25).margin(1e-6));
  CHECK(r.sum_squares == Approx(0.25).epsilon(1e-6));
}

TEST_CASE("Infeasible points are never returned; the other parameters still move",
          "[least_squares]") {
  // Fit y = a + b t where only a <= 0.5 is feasible, a constraint the solver
  // sees only through the residual function (as ETS admissibility). From inside
  // and from a start on the boundary, a ends at the boundary and b at its best
  // value given a = 0.5: sum t (y - 0.5) / sum t^2 = 31 / 14.
  const std::vector<double> t = {0, 1, 2, 3};
  const std::vector<double> y = {1, 3, 5, 7};  // a = 1, b = 2 unconstrained.
  int infeasible_calls = 0;
  auto f = [&](std::span<const double> x, std::span<double> r) {
    if (x[0] > 0.5) {
      ++infeasible_calls;
      return false;
    }
    for (size_t i = 0; i < t.size(); ++i) r[i] = y[i] - (x[0] + x[1] * t[i]);
    return true;
  };
  for (double a0 : {0.0, 0.5}) {
    infeasible_calls = 0;
    LeastSquaresResult r = MinimizeSumOfSquares(f, 4, {a0, 0.0}, {});
    CHECK(infeasible_calls > 0);
    CHECK(r.x[0] <= 0.5);
    // The boundary is approached by bisecting infeasible steps, so a
    // ends close to it (not on it) and the fit is close to the constrained best.
    CHECK(r.x[0] == Approx(0.5).margin(0.02));
    double best = 0;
    for (size_t i = 0; i < t.size(); ++i) best += std::pow(y[i] - 0.5 - 31.0 / 14 * t[i], 2);
    CHECK(r.sum_squares <= best * 1.05);
  }
}

TEST_CASE("Broyden updates reach the same optimum with fewer residual evaluations",
          "[least_squares]") {
  // y = a exp(-b t) + c on 60 points with a deterministic disturbance: a
  // non-zero-residual problem, where Gauss-Newton converges linearly.
  std::vector<double> t, y;
  for (int i = 0; i < 60; ++i) {
    t.push_back(0.1 * i);
    y.push_back(5 * std::exp(-0.7 * t.back()) + 1 + 0.05 * std::sin(1.7 * i));
  }
  auto f = [&](std::span<const double> x, std::span<double> r) {
    for (size_t i = 0; i < t.size(); ++i) r[i] = y[i] - (x[0] * std::exp(-x[1] * t[i]) + x[2]);
    return true;
  };
  LeastSquaresOptions exact;
  exact.ftol = 1e-14;
  LeastSquaresOptions broyden = exact;
  broyden.broyden_span = 4;
  const LeastSquaresResult a = MinimizeSumOfSquares(f, 60, {1.0, 0.1, 0.0}, exact);
  const LeastSquaresResult b = MinimizeSumOfSquares(f, 60, {1.0, 0.1, 0.0}, broyden);
  CHECK(b.sum_squares == Approx(a.sum_squares).epsilon(1e-9));
  for (int j = 0; j < 3; ++j) CHECK(b.x[j] == Approx(a.x[j]).epsilon(1e-5));
  CHECK(a.x[1] == Approx(0.7).epsilon(0.02));
  CHECK(b.evaluations < a.evaluations);
}

TEST_CASE("An infeasible start is reported as such", "[least_squares]") {
  auto f = [](std::span<const double>, std::span<double>) { return false; };
  LeastSquaresResult r = MinimizeSumOfSquares(f, 3, {1.0}, {});
  CHECK(std::isinf(r.sum_squares));
  CHECK(r.x == std::vector<double>{1.0});
}

}  // namespace
}  // namespace ppe::forecast
