#pragma once

// Seasonal ARIMA(p,d,q)(P,D,Q)[m] with optional constant/drift.
//
// Estimation: conditional sum of squares (CSS, Levenberg-Marquardt) for the
// order search, then exact Gaussian maximum likelihood by the Kalman filter on
// the state-space form of the differenced series (stationary initial
// covariance, Chandrasekhar recursions: O(r) per observation), as R's
// arima(method = "CSS-ML"); Levenberg-Marquardt, then Nelder-Mead along the
// invertibility boundary. For state dimensions above 120 (seasonal AR/MA
// terms of long periods) the exact optimisation is skipped: the CSS estimates
// are kept and their exact log-likelihood is reported. Automatic order
// selection follows Hyndman & Khandakar (2008): KPSS tests for d, a
// seasonal-strength test for D, then a stepwise search over (p,q,P,Q) by AICc;
// models with an AR or MA root inside radius 1.01 are rejected, as R does.
//
// Update is O(r) with r = max(p + mP, q + mQ + 1), plus O(d + mD) for the
// differencing, independent of the history length.

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

struct ArimaOrder {
  int p = 0, d = 0, q = 0;
  int sp = 0, sd = 0, sq = 0;  // Seasonal P, D, Q.
  int period = 1;
  bool constant = false;  // Mean (d + D = 0) or drift (d + D = 1).
  std::string Name() const;
};

struct ArimaAutoOptions {
  int period = 1;
  int max_p = 5, max_q = 5, max_sp = 2, max_sq = 2, max_d = 2, max_sd = 1;
  // As R's stepwise search: no bound on p + q + P + Q beyond the above.
  int exact_refits = 2;  // Best CSS candidates refitted by exact ML; lowest AICc wins.
};

class ArimaModel final : public Model {
 public:
  std::string Name() const override { return order_.Name(); }
  std::string Family() const override { return "arima"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override { return loglik_; }
  double Aicc() const override { return aicc_; }
  double Sigma2() const override { return sigma2_; }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override { return std::make_unique<ArimaModel>(*this); }

  const ArimaOrder& order() const { return order_; }
  // Non-seasonal and seasonal coefficients, in R's order: ar, ma, sar, sma.
  const std::vector<double>& coefficients() const { return coef_; }
  double mean() const { return mean_; }  // Mean of the differenced series.

 private:
  friend absl::StatusOr<std::unique_ptr<ArimaModel>> FitArima(std::span<const double>,
                                                              const ArimaOrder&, bool);
  ArimaOrder order_;
  std::vector<double> coef_;
  std::vector<double>
      ar_;  // Expanded AR polynomial (phi_1..phi_P'), sign as x_t = sum phi x_{t-i}.
  std::vector<double> ma_;     // Expanded MA polynomial (theta_1..theta_Q').
  std::vector<double> delta_;  // Differencing: y_t = w_t + sum delta_k y_{t-k}.
  double mean_ = 0;
  double sigma2_ = 0;
  double loglik_ = 0;
  double aicc_ = 0;
  int n_ = 0;
  // Filter state (predicted, for the next observation), predictive steady-state gain.
  std::vector<double> a_;
  std::vector<double> gain_;
  std::vector<double> recent_;  // Last delta_.size() raw values, newest last.
};

absl::StatusOr<std::unique_ptr<ArimaModel>> FitArima(std::span<const double> y,
                                                     const ArimaOrder& order, bool exact = true);
absl::StatusOr<std::unique_ptr<ArimaModel>> FitArimaAuto(std::span<const double> y,
                                                         const ArimaAutoOptions& options);

}  // namespace ppe::forecast
