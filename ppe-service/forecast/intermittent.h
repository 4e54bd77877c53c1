#pragma once

// Forecasts for intermittent demand: series that are mostly zeros, as a
// small profile's requests per bucket are. Three methods:
//   * Croston (1972): simple exponential smoothing of the non-zero sizes and
//     of the intervals between them, forecast = size / interval; initialised
//     as R's forecast::croston (first size, first interval, then smoothed);
//   * SBA (Syntetos & Boylan 2005): Croston times (1 - alpha / 2), which
//     removes Croston's bias;
//   * TSB (Teunter, Syntetos & Babai 2011): the probability of demand is
//     smoothed every bucket (so it decays while demand is absent) and the
//     size on demand; forecast = probability x size.
// None has a likelihood. The interval comes from the demand distribution the
// method implies: no demand with probability 1 - p, else a size drawn from
// the recent non-zero sizes; the upper bound is its (50 + level/2)% quantile
// (zero when demand is rarer than that tail, even where the mean is not).
// For Croston and SBA, whose rate does not decay while demand is absent, the
// bound takes the probability to be at most 1 / (buckets since the last
// demand + 1), so a profile gone quiet stops being provisioned for (the
// point forecast stays R's).

#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

enum class IntermittentMethod { kCroston, kSba, kTsb };

// The share of zero buckets above which the automatic forecaster uses these
// methods (and only these) for a series.
constexpr double kIntermittentZeroShare = 0.5;

class IntermittentModel final : public Model {
 public:
  // Errors: a series without a positive value.
  static absl::StatusOr<std::unique_ptr<IntermittentModel>> Fit(std::span<const double> y,
                                                                IntermittentMethod method,
                                                                double alpha = 0.1);

  std::string Name() const override;
  std::string Family() const override { return "intermittent"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override { return 0; }
  double Aicc() const override { return 0; }
  double Sigma2() const override { return sigma2_; }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override {
    return std::make_unique<IntermittentModel>(*this);
  }

  // The point forecast per bucket.
  double Mean() const;
  // The probability of demand in a bucket that the method implies.
  double Probability() const;

  IntermittentModel(IntermittentMethod method, double alpha) : method_(method), alpha_(alpha) {}

 private:
  IntermittentMethod method_;
  double alpha_;
  double size_ = 0;      // smoothed non-zero size
  double interval_ = 1;  // Croston/SBA: smoothed interval between demands
  double prob_ = 0;      // TSB: smoothed probability of demand
  int since_ = 0;        // buckets since the last demand
  bool started_ = false;
  double sigma2_ = 0;         // one-step squared error of the fit, averaged
  std::deque<double> sizes_;  // the last kSizesKept non-zero sizes
  static constexpr size_t kSizesKept = 200;
};

// True when more than kIntermittentZeroShare of `y` is zero and some bucket
// has demand.
bool IsIntermittent(std::span<const double> y);

// Sparse demand that recurs at one phase of a period: a burst at :05 every
// hour, a household that watches every evening. Croston, SBA and TSB take
// demands to fall at random and spread them over every bucket; this model
// keeps, per phase of the period, the values of the last `cycles` cycles. The
// forecast is their mean, the bounds their lowest and highest (a phase with no
// demand in those cycles is provisioned for nothing).
class SeasonalSparseModel final : public Model {
 public:
  // Errors: a period below 2 or a series shorter than `cycles` cycles.
  static absl::StatusOr<std::unique_ptr<SeasonalSparseModel>> Fit(std::span<const double> y,
                                                                  int period, int cycles = 3);
  std::string Name() const override;
  std::string Family() const override { return "intermittent"; }
  void Update(double y) override;
  absl::StatusOr<Forecast> Predict(int horizon, double level) const override;
  double LogLikelihood() const override { return 0; }
  double Aicc() const override { return 0; }
  double Sigma2() const override { return sigma2_; }
  std::vector<NamedValue> Parameters() const override;
  std::unique_ptr<Model> Clone() const override {
    return std::make_unique<SeasonalSparseModel>(*this);
  }

  SeasonalSparseModel(int period, int cycles) : period_(period), cycles_(cycles) {}

 private:
  struct Phase {
    double mean, low, high;
  };
  // The kept values of the phase `h` buckets after the next one.
  Phase At(int h) const;

  int period_;
  int cycles_;
  // The last period_ * cycles_ values, ring_[pos_] the oldest: floats, as
  // DemandHistory keeps them (a day of minutes: 17 KB).
  std::vector<float> ring_;
  size_t pos_ = 0;
  double sigma2_ = 0;  // squared error of the one-step forecasts over the fit
};

// The automatic forecaster's choice for an intermittent series: for each
// period with three cycles in `y`, the seasonal sparse model, chosen when its
// mean has the lower squared error than Croston, SBA or TSB on a hold-out of
// the last whole cycle of the longest such period; otherwise FitIntermittent.
// Squared error, not absolute: the mean minimises it, and on demand that falls
// at random the intermittent mean has about half the seasonal one's.
absl::StatusOr<std::unique_ptr<Model>> FitSparse(std::span<const double> y,
                                                 const std::vector<int>& periods);

// Croston, SBA or TSB (alpha 0.1), whichever has the smallest one-step
// squared error.
absl::StatusOr<std::unique_ptr<Model>> FitIntermittent(std::span<const double> y);

}  // namespace ppe::forecast
