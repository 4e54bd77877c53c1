#pragma once

// STL and MSTL seasonal decomposition, and the stlf/mstl forecasting model.
//
// STL (Cleveland, Cleveland, McRae and Terpenning, "STL: A Seasonal-Trend
// Decomposition Procedure Based on Loess", J. Official Statistics 6, 1990)
// splits y = seasonal + trend + remainder with an inner loop of
//   1. detrending, 2. loess smoothing of each cycle-subseries (one series per
//   phase, extended one cycle at each end), 3. a low-pass filter of that
//   (moving averages of period, period and 3, then loess) removed from it,
//   4. deseasonalising, 5. loess of the deseasonalised series (the trend),
// and an optional outer loop of robustness weights (Tukey's bisquare of the
// remainder over six median absolute remainders). Loess is evaluated every
// `jump` points and linearly interpolated in between. The parameters, their
// defaults and every numerical detail follow R's stats::stl, so the result
// matches it to rounding (tests/forecast/stl_vs_r_test.cc checks 1e-6).
//
// MSTL (Bandara, Hyndman and Bergmeir 2021; R's forecast::mstl) runs STL for
// each period in increasing order on the series with the other seasonal
// components removed, `iterate` times; the trend is that of the last STL.
//
// StlModel (R's forecast::stlf / forecast.mstl): a non-seasonal model (ETS or
// ARIMA, chosen by AICc) is fitted to the seasonally adjusted series; the
// forecasts add the last cycle of each seasonal component (seasonal naive).
// With a Box-Cox lambda the decomposition is done on the transformed series.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

struct StlOptions {
  int period = 0;           // Seasonal period (>= 2); the series needs more than 2 cycles.
  bool s_periodic = false;  // R's s.window = "periodic": seasonal = per-phase means.
  int s_window = 0;         // Seasonal loess span (required unless s_periodic).
  int s_degree = 0;         // 0 or 1.
  int t_window = 0;         // 0: nextodd(ceil(1.5 period / (1 - 1.5 / s_window))).
  int t_degree = 1;         // 0 or 1.
  int l_window = 0;         // 0: nextodd(period).
  int l_degree = -1;        // -1: t_degree.
  int s_jump = 0;           // 0: ceil(window / 10), for each of the three smoothers.
  int t_jump = 0;
  int l_jump = 0;
  bool robust = false;  // Robustness iterations (outer loop).
  int inner = -1;       // -1: 1 if robust, else 2.
  int outer = -1;       // -1: 15 if robust, else 0.
};

struct StlResult {
  std::vector<double> seasonal;
  std::vector<double> trend;
  std::vector<double> remainder;  // y - seasonal - trend.
  std::vector<double> weights;    // Final robustness weights (all 1 without robust).
};

// STL of a finite series. Errors: period < 2, n <= 2 * period, a missing
// s_window, bad degrees, non-finite values.
absl::StatusOr<StlResult> Stl(std::span<const double> y, const StlOptions& options);

struct MstlOptions {
  std::vector<int> periods;      // Periods with fewer than two cycles (>= n / 2) are dropped.
  std::vector<int> s_windows;    // Per period (sorted order); empty: 11, 15, 19, ... as R.
  int iterate = 2;               // Sweeps over the periods (1 with a single period, as R).
  std::optional<double> lambda;  // Box-Cox transform before decomposing.
  int t_window = 0;              // Passed to each STL (0: STL's default).
  bool robust = false;
};

struct MstlResult {
  std::vector<int> periods;                   // Sorted, the ones kept.
  std::vector<double> trend;                  // Of the (transformed) series.
  std::vector<std::vector<double>> seasonal;  // One per period.
  std::vector<double> remainder;
};

// MSTL as R's forecast::mstl. With no usable period it returns an error
// (R falls back to supsmu, which is not reproduced here).
absl::StatusOr<MstlResult> Mstl(std::span<const double> y, const MstlOptions& options);

// Box-Cox transform as R's forecast::BoxCox (lambda 0: log; negative values
// with lambda < 0: NaN) and its inverse.
double BoxCox(double x, double lambda);
double InvBoxCox(double z, double lambda);

enum class StlMethod { kEts, kArima };

struct StlModelOptions {
  MstlOptions mstl;
  StlMethod method = StlMethod::kEts;
};

// Seasonal naive of the MSTL seasonal components + a non-seasonal model of the
// seasonally adjusted series. Update is O(number of periods) plus the inner
// model's update.
class StlModel final : public Model {
 public:
  // `last_cycles[i]` holds the last periods[i] seasonal values, indexed by
  // t mod periods[i] with t counted from the start of the fitted series.
  StlModel(std::vector<int> periods, std::vector<std::vector<double>> last_cycles,
           std::unique_ptr<Model> adjusted, std::optional<double> lambda, long n);
  StlModel(const StlModel& other);

  std::string Name() const override;
  std::string Family() const override { return "stl"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override { return adjusted_->LogLikelihood(); }
  double Aicc() const override { return adjusted_->Aicc(); }
  double Sigma2() const override { return adjusted_->Sigma2(); }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override { return std::make_unique<StlModel>(*this); }

  // Sum of the seasonal components at time t (transformed scale).
  double SeasonalAt(long t) const;
  const std::vector<int>& periods() const { return periods_; }

 private:
  std::vector<int> periods_;
  std::vector<std::vector<double>> last_cycles_;
  std::unique_ptr<Model> adjusted_;
  std::optional<double> lambda_;
  long t_ = 0;  // Index of the next observation.
};

// R's stlf(y, method = "ets"|"arima") for one or several periods (mstl with
// its defaults). Errors as Mstl; a lambda needs positive data for lambda <= 0.
absl::StatusOr<std::unique_ptr<StlModel>> FitStl(std::span<const double> y,
                                                 const StlModelOptions& options);

// Seasonal shape of a series, for pooling: a sparse series borrows the shape
// of an aggregate it belongs to (e.g. a profile that of its service's total
// demand). At(t) = max(0, level + sum of the seasonal components' last cycles
// at t) / level, where level is the mean MSTL trend over the longest period's
// last cycle; its mean over a cycle is about 1. t is absolute (e.g. a bucket
// number): the shape's series started at t = origin.
struct SeasonalShape {
  std::vector<int> periods;
  std::vector<std::vector<double>> last_cycles;  // Indexed by (t - origin) mod periods[i].
  double level = 0;
  int64_t origin = 0;
  double At(int64_t t) const;
};
// Errors as Mstl, or a level <= 0.
absl::StatusOr<SeasonalShape> SeasonalShapeOf(std::span<const double> y,
                                              const std::vector<int>& periods, int64_t origin = 0);

// Forecast of a sparse series `y` (counts, observed at t = y_origin ...) from
// the aggregate's shape: its deseasonalised level sum(y) / sum(shape) over the
// observed buckets, times the shape over the horizon. The interval is that of
// Poisson counts with that mean: its quantiles, so a profile seen once in many
// buckets has an upper bound of 0 (no VM held for it), not the
// mean + z sqrt(mean) of the normal approximation (above 0 for any mean > 0).
// Errors: empty y, bad horizon/level.
absl::StatusOr<Forecast> PooledForecast(std::span<const double> y, int64_t y_origin,
                                        const SeasonalShape& shape, int horizon, double level);

}  // namespace ppe::forecast
