#pragma once

// Thin wrapper over NLopt's derivative-free local optimisers, used by the
// ETS and ARIMA estimators.

#include <functional>
#include <span>
#include <vector>

namespace ppe::forecast {

struct MinimizeOptions {
  std::vector<double> lower;         // Empty: unbounded.
  std::vector<double> upper;         // Empty: unbounded.
  std::vector<double> initial_step;  // Empty: NLopt default.
  int max_evaluations = 2000;
  double ftol_rel = 1e-10;
  double xtol_rel = 1e-10;
  bool bobyqa = false;  // Default: Nelder-Mead.
};

struct MinimizeResult {
  std::vector<double> x;
  double value = 0;
  int evaluations = 0;
};

// Minimises `f` from `x0`. Never fails: returns the best point seen.
MinimizeResult Minimize(const std::function<double(std::span<const double>)>& f,
                        std::vector<double> x0, const MinimizeOptions& options);

}  // namespace ppe::forecast
