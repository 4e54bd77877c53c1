#pragma once

// Common types of the forecasting library (ppe::forecast).
//
// Every fitted model implements `Model`:
//   * `Update(y)` folds one new bucket into the state in O(1) (no refit);
//   * `Predict(h, level)` returns point forecasts and a central prediction
//     interval at `level` percent (the scaler provisions to `upper`).
// Fitting is done by the free functions in forecaster.h (automatic) or by the
// per-family functions in ets.h, arima.h and decomposition.h.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ppe::forecast {

// Point forecasts and the bounds of a central prediction interval.
struct Forecast {
  std::vector<double> mean;
  std::vector<double> lower;
  std::vector<double> upper;
  double level = 95.0;  // Percent.
};

// A named parameter of a fitted model, for reporting.
using NamedValue = std::pair<std::string, double>;

class Model {
 public:
  virtual ~Model() = default;

  // E.g. "ETS(M,Ad,A)[24]", "ARIMA(1,0,1)(0,1,1)[24]".
  virtual std::string Name() const = 0;
  // Model family, e.g. "ets", "arima", "decomp_ets", "snaive".
  virtual std::string Family() const = 0;
  // Folds one new observation into the state. O(1) in the history length.
  virtual void Update(double y) = 0;
  // Forecasts `horizon` >= 1 steps ahead with a `level`% interval (0 < level < 100).
  virtual absl::StatusOr<Forecast> Predict(int horizon, double level) const = 0;
  // Log-likelihood as reported by the reference implementation of the family
  // (R forecast::ets convention for ETS, full Gaussian for ARIMA).
  virtual double LogLikelihood() const = 0;
  virtual double Aicc() const = 0;
  // Innovation variance used for the intervals.
  virtual double Sigma2() const = 0;
  virtual std::vector<NamedValue> Parameters() const = 0;
  virtual std::unique_ptr<Model> Clone() const = 0;
};

}  // namespace ppe::forecast
