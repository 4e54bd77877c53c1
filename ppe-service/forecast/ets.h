#pragma once

// ETS (error, trend, seasonal) exponential smoothing in state-space form
// (Hyndman et al. 2008), with the recursions, parameter bounds, initial-state
// heuristic and likelihood convention of R's forecast::ets, so that results can
// be checked against it number for number.
//
//   error  A | M      trend  N | A | Ad (damped)      season  N | A | M
//
// Parameters are estimated by maximum likelihood (the likelihood is a sum of
// squares: Levenberg-Marquardt on the smoothing parameters and the initial
// states, "both" bounds: usual + admissible), the
// model is chosen by AICc. The state is kept as level, trend and a ring of the
// last `period` seasonal indices, so `Update` is O(1).

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

enum class Component : char {
  kNone = 'N',
  kAdditive = 'A',
  kMultiplicative = 'M',
};

struct EtsSpec {
  Component error = Component::kAdditive;  // kAdditive or kMultiplicative.
  Component trend = Component::kNone;      // kNone or kAdditive.
  Component season = Component::kNone;
  bool damped = false;
  int period = 1;  // Seasonal period in buckets (ignored without season).

  // "ETS(M,Ad,A)".
  std::string Name() const;
  // Parses "ANN", "MAdM", "A,Ad,N" style codes.
  static absl::StatusOr<EtsSpec> Parse(absl::string_view code, int period);
  // Number of states in the R layout: level, [trend], [period seasonals].
  int NumStates() const;
};

struct EtsParameters {
  double alpha = 0.5;
  double beta = 0.0;  // Innovation weight of the trend (R's beta).
  double gamma = 0.0;
  double phi = 1.0;
};

// One pass of the model over `y` from `initial_state` (R layout: l, b,
// s[0..m-1] with s[0] the most recent seasonal index and s[m-1] the one used
// for the next observation).
struct EtsFilterResult {
  double lik = 0;                   // R's -2 log L up to constants: n log(SSE) [+ 2 sum log|f|].
  std::vector<double> residuals;    // Innovations (relative for M error).
  std::vector<double> fitted;       // One-step forecasts.
  std::vector<double> final_state;  // R layout.
  std::vector<std::vector<double>> states;  // Only with keep_states.
};
absl::StatusOr<EtsFilterResult> EtsFilter(const EtsSpec& spec, const EtsParameters& params,
                                          std::span<const double> initial_state,
                                          std::span<const double> y, bool keep_states = false);

// R's admissibility test (characteristic-polynomial roots inside the unit circle).
bool EtsAdmissible(const EtsSpec& spec, const EtsParameters& params);

struct EtsFitOptions {
  int max_iterations = 200;          // Levenberg-Marquardt iterations per start.
  bool fit_initial_states = true;    // false: smoothing parameters only, heuristic states.
  int joint_starts = 3;              // Joint fits from the best distinct stage-1 optima.
  int smooth_starts = 0;             // Stage 1 from this many of its starting points
                                     // (those with the smallest sum of squares; 0: all).
  double ftol = 1e-8;                // Relative decrease below which a fit stops.
  double stall_loglik = 2e-3;        // ... or when 10 iterations gain less log-likelihood.
  int broyden_span = 4;              // Broyden Jacobian updates between differenced ones.
  bool allow_multiplicative = true;  // Only used if the data is strictly positive.
  bool allow_damped = true;
  int full_fits = 3;    // Auto: specifications fitted fully after screening (0: all).
  int max_period = 24;  // As R: seasonality above this period is not fitted.
};

class EtsModel final : public Model {
 public:
  // A model with given parameters and initial state, run over `y`.
  static absl::StatusOr<std::unique_ptr<EtsModel>> FromParameters(
      std::span<const double> y, const EtsSpec& spec, const EtsParameters& params,
      std::span<const double> initial_state, int num_estimated);

  std::string Name() const override;
  std::string Family() const override { return "ets"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override { return -0.5 * lik_; }
  double Aicc() const override;
  double Sigma2() const override { return sigma2_; }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override { return std::make_unique<EtsModel>(*this); }

  const EtsSpec& spec() const { return spec_; }
  const EtsParameters& params() const { return params_; }
  const std::vector<double>& initial_state() const { return initial_state_; }
  // Current state in R layout.
  std::vector<double> State() const;
  // Point forecasts only (the deterministic recursion, as R's forecast.ets).
  std::vector<double> PointForecast(int horizon) const;
  int nobs() const { return n_; }
  int num_estimated() const { return num_estimated_; }

 private:
  EtsSpec spec_;
  EtsParameters params_;
  std::vector<double> initial_state_;
  double lik_ = 0;
  double sigma2_ = 0;
  int n_ = 0;
  int num_estimated_ = 0;  // Estimated parameters incl. initial states (R's np - 1).
  // Current state: level, trend, seasonal ring (season_[pos_] is used next).
  double level_ = 0;
  double trend_ = 0;
  std::vector<double> season_;
  int pos_ = 0;
};

// Fits one ETS specification by maximum likelihood.
absl::StatusOr<std::unique_ptr<EtsModel>> FitEts(std::span<const double> y, const EtsSpec& spec,
                                                 const EtsFitOptions& options = {});

// Fits the admissible ETS specifications for `period` and returns the one with
// the smallest AICc. Multiplicative components need strictly positive data;
// short series fall back to fewer components (down to ETS(A,N,N)).
absl::StatusOr<std::unique_ptr<EtsModel>> FitEtsAuto(std::span<const double> y, int period,
                                                     const EtsFitOptions& options = {});

// R's initial-state heuristic (forecast:::initstate), R layout without the
// last seasonal index (which follows from normalisation).
std::vector<double> EtsHeuristicState(std::span<const double> y, const EtsSpec& spec);

}  // namespace ppe::forecast
