#pragma once

// Bounded nonlinear least squares (Levenberg-Marquardt with a projected step
// and an active set for parameters held at a bound), with a forward-difference
// Jacobian. Used by the ETS estimator, whose likelihood is a sum of squares
// (see ets.cc), in place of a derivative-free search in 30 dimensions.

#include <functional>
#include <span>
#include <vector>

namespace ppe::forecast {

// Fills `residuals` (fixed length) at `x`; returns false where `x` is not
// feasible (e.g. an inadmissible ETS parameter set). The function is called
// with points inside the box only. An infeasible step is retried with the
// parameters whose own move is infeasible held for that iteration, so a
// solution on such a constraint still optimises the other parameters; a
// constraint is not followed along a direction that couples parameters.
using ResidualFn = std::function<bool(std::span<const double> x, std::span<double> residuals)>;

// Optional: the residuals of several points at once (a Jacobian's columns),
// for functions that are faster in batches. Column j of `residuals`
// (num_residuals x points.size(), column-major) and feasible[j] for point j.
using BatchResidualFn = std::function<void(std::span<const std::vector<double>> points,
                                           std::span<double> residuals, std::span<char> feasible)>;

struct LeastSquaresOptions {
  BatchResidualFn batch;      // Used for the Jacobian if set.
  std::vector<double> lower;  // Per parameter; empty: unbounded.
  std::vector<double> upper;
  std::vector<double> scale;  // Typical magnitude per parameter (difference steps); empty: 1.
  int max_iterations = 100;
  // Stop when an accepted step lowers the sum of squares by less than this
  // (relative) twice in a row, or when the scaled step is below xtol.
  double ftol = 1e-10;
  double xtol = 1e-10;
  // Also stop when the last stall_window iterations lowered the sum of squares
  // by less than stall_ftol (relative) together (0: off).
  int stall_window = 10;
  double stall_ftol = 1e-6;
  // Difference the Jacobian at most every broyden_span + 1 iterations and
  // carry it by rank-one (Broyden) updates in between, or sooner when the
  // linear model predicted a step poorly (0: every iteration).
  int broyden_span = 0;
};

struct LeastSquaresResult {
  std::vector<double> x;
  double sum_squares = 0;  // +inf if no feasible point was found.
  int iterations = 0;
  int evaluations = 0;  // Residual evaluations, Jacobian columns included.
};

// Minimises sum_i r_i(x)^2 from `x0` (clipped to the box). Never fails:
// returns the best feasible point seen (x0 itself if nothing better).
LeastSquaresResult MinimizeSumOfSquares(const ResidualFn& f, int num_residuals,
                                        std::vector<double> x0, const LeastSquaresOptions& options);

}  // namespace ppe::forecast
