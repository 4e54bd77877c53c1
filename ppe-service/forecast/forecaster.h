#pragma once

// Public entry point of ppe::forecast for the scaler.
//
//   FitOptions options;
//   options.periods = {1440, 10080};           // daily and weekly, in buckets
//   absl::StatusOr<std::unique_ptr<Model>> model = Fit(history.Values(), options);
//   (*model)->Update(latest_count);              // O(1), every bucket
//   absl::StatusOr<Forecast> f = (*model)->Predict(lead_time_buckets, 95);
//   provision_for(f->upper);                     // upper quantile
//
// Refits happen on a schedule, off the lookup path: Fit() on a copy of the
// history, then swap the model pointer. Between refits, Update() keeps the
// state current.
//
// Automatic selection (ModelFamily::kAuto): each family picks its own model
// by AICc (ETS: the ETS family; ARIMA: stepwise search; STL/MSTL + ETS for
// long (> 24) or several periods, classical decomposition + ETS for one short
// period; stl.h); the families, whose likelihoods are not
// comparable, are then compared on a hold-out of the last observations (MASE),
// and the winner is refitted on the full series. Short, constant or all-zero
// series fall back to simpler models (naive, seasonal naive, mean); series
// that are mostly zeros get an intermittent-demand method (Croston, SBA or
// TSB; intermittent.h).

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

enum class ModelFamily {
  kAuto,
  kEts,
  kArima,
  kDecompEts,      // Classical decomposition (all periods) + non-seasonal ETS.
  kStl,            // MSTL (all periods) + non-seasonal ETS, as R's stlf (stl.h).
  kSeasonalNaive,  // Last cycle of the smallest period repeated.
  kNaive,
};

absl::StatusOr<ModelFamily> ParseModelFamily(absl::string_view name);

// Which seasonal decomposition the automatic selection tries for long (> 24)
// or several periods (one short period always uses the classical one).
enum class Decomposition { kStl, kClassical, kBoth };

// Which seasonal-naive forecasts the automatic selection tries.
enum class SeasonalNaiveCandidates { kEveryPeriod, kLongest, kSmallest };

// Auto: the history, in cycles of the longest period, from which the default
// hold-out is one whole cycle of it (FitOptions::holdout).
inline constexpr int kWholeCycleHoldoutCycles = 10;

struct FitOptions {
  std::vector<int> periods;  // Seasonal periods in buckets; empty: none.
  // Auto, mostly-zero series only: more periods the seasonal sparse model may
  // try besides `periods` (FitSparse, intermittent.h), e.g. the hour and the
  // day in buckets. It is chosen only where it beats Croston's family on a
  // hold-out, so a period the demand does not have costs nothing but time.
  std::vector<int> sparse_periods;
  ModelFamily family = ModelFamily::kAuto;
  std::string ets_spec;  // With kEts: a fixed specification ("MAdA"); empty: AICc.
  // With kArima: a fixed order {p, d, q, P, D, Q} (+ optional 7th: 1 = constant);
  // empty: automatic order selection.
  std::vector<int> arima_order;
  // Auto: hold-out length. 0: one whole cycle of the longest period when the
  // history holds at least kWholeCycleHoldoutCycles of them (the hold-out then
  // judges every phase of every cycle, e.g. each day of the week, and costs at
  // most a tenth of the history); otherwise max(min(longest period, 48), 8).
  // At most n / 5 either way.
  int holdout = 0;
  bool include_arima = true;                          // Auto: ARIMA is the slowest family.
  Decomposition decomposition = Decomposition::kStl;  // Auto: see above.
  // Auto: the seasonal-naive candidates: the longest period with two cycles
  // (default, as R's snaive on an msts), only the smallest, or one per period
  // (the scaler's choice: without ARIMA the candidates are few, and on M4
  // hourly the daily one helps; docs/forecasting.md). kSeasonalNaive alone
  // always uses the smallest.
  SeasonalNaiveCandidates snaive = SeasonalNaiveCandidates::kLongest;
  // Auto: the forecast is the median (or, with combine_median false, the
  // mean) of the candidates whose hold-out error is at most `combine_within`
  // times the best one's (0: no limit), at most `combine` of them (0: no
  // limit). Chosen on the first half of M4 hourly and checked on the second
  // (docs/forecasting.md, "Automatic selection").
  int combine = 0;
  double combine_within = 2.0;
  bool combine_median = true;
};

// Fits a model to `y` (NaNs are interpolated). Errors: empty series,
// non-finite values only, or a family that cannot be fitted to so few points.
absl::StatusOr<std::unique_ptr<Model>> Fit(std::span<const double> y, const FitOptions& options);

// Fit then Predict.
absl::StatusOr<Forecast> FitAndPredict(std::span<const double> y, const FitOptions& options,
                                       int horizon, double level);

// Naive (period 1) or seasonal naive forecaster; also the fallback model.
class SeasonalNaiveModel final : public Model {
 public:
  SeasonalNaiveModel(std::span<const double> y, int period);
  std::string Name() const override;
  std::string Family() const override { return period_ > 1 ? "snaive" : "naive"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override;
  double Aicc() const override;
  double Sigma2() const override { return sigma2_; }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override {
    return std::make_unique<SeasonalNaiveModel>(*this);
  }

 private:
  int period_;
  std::vector<double> last_;  // Ring of the last `period_` values.
  int pos_ = 0;               // last_[pos_] is the oldest = next forecast.
  double sigma2_ = 0;
  int n_ = 0;
};

// Equal-weight combination of several fitted models (automatic selection):
// at each step the median of the members' forecasts (the mean of the middle
// two for an even count), or with `median` false their mean. The interval
// bounds are combined the same way (an approximation); log-likelihood and
// AICc are those of the first (best hold-out) member.
class CombinationModel final : public Model {
 public:
  explicit CombinationModel(std::vector<std::unique_ptr<Model>> members, bool median = false);
  CombinationModel(const CombinationModel& other);
  std::string Name() const override;
  std::string Family() const override { return "combination"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override;
  double Aicc() const override;
  double Sigma2() const override;
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override {
    return std::make_unique<CombinationModel>(*this);
  }

 private:
  std::vector<std::unique_ptr<Model>> members_;
  bool median_ = false;
};

}  // namespace ppe::forecast
