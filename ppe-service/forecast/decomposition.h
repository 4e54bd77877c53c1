#pragma once

// Multi-seasonal model for long and several seasonalities (e.g. m = 1440 and
// 10080 for per-minute data, 24 and 168 for hourly data), where ETS's own
// seasonal states do not fit (R's ets drops seasonality above m = 24):
//
//   1. the series is decomposed into seasonal indices for each period by an
//      iterated classical decomposition (centred moving-average trend, per-phase
//      recency-weighted means of the detrended data, each period fitted on the
//      series with the other periods removed), additively or on log(1 + y);
//   2. a non-seasonal ETS is fitted (AICc) to the seasonally adjusted series;
//   3. forecasts = ETS forecasts of the adjusted series + the seasonal indices
//      for the future phases (the intervals are those of the ETS part).
//
// Update is O(number of periods).

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/forecast/ets.h"
#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

struct DecompositionOptions {
  std::vector<int> periods;
  bool log_transform = false;  // Decompose log(1 + y) (multiplicative seasonality).
  double cycle_decay = 0.8;    // Weight of a cycle relative to the next newer one.
  EtsFitOptions ets;
};

// Centred moving average of width m (2 x m for even m); NaN near the ends.
std::vector<double> CentredMovingAverage(std::span<const double> z, int m);

// Seasonal indices per period, each of length period, indexed by t mod period.
std::vector<std::vector<double>> DecomposeSeasonal(std::span<const double> y,
                                                   const std::vector<int>& periods,
                                                   double cycle_decay);

class DecompEtsModel final : public Model {
 public:
  DecompEtsModel(std::vector<int> periods, std::vector<std::vector<double>> seasonal,
                 std::unique_ptr<EtsModel> ets, bool log_transform, int n);
  DecompEtsModel(const DecompEtsModel& other);

  std::string Name() const override;
  std::string Family() const override { return "decomp_ets"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override { return ets_->LogLikelihood(); }
  double Aicc() const override { return ets_->Aicc(); }
  double Sigma2() const override { return ets_->Sigma2(); }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override { return std::make_unique<DecompEtsModel>(*this); }

 private:
  double SeasonalAt(long t) const;

  std::vector<int> periods_;
  std::vector<std::vector<double>> seasonal_;
  std::unique_ptr<EtsModel> ets_;
  bool log_ = false;
  long t_ = 0;  // Index of the next observation.
};

absl::StatusOr<std::unique_ptr<DecompEtsModel>> FitDecompEts(std::span<const double> y,
                                                             const DecompositionOptions& options);

}  // namespace ppe::forecast
