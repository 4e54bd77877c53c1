#include "ppe-service/forecast/decomposition.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::forecast {
std::vector<double> CentredMovingAverage(std::span<const double> z, int m) {
  const int n = static_cast<int>(z.size());
  std::vector<double> out(n, std::nan(""));
  const int half = m / 2;
  if (n < 2 * half + 1) return out;
  // Prefix sums keep this O(n) for m = 1440.
  std::vector<double> prefix(n + 1, 0.0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + z[i];
  for (int t = half; t + half < n; ++t) {
    if (m % 2 == 1) {
      out[t] = (prefix[t + half + 1] - prefix[t - half]) / m;
    } else {
      const double inner = prefix[t + half] - prefix[t - half + 1];
      out[t] = (inner + 0.5 * (z[t - half] + z[t + half])) / m;
    }
  }
  return out;
}

std::vector<std::vector<double>> DecomposeSeasonal(std::span<const double> y,
                                                   const std::vector<int>& periods,
                                                   double cycle_decay) {
  const int n = static_cast<int>(y.size());
  const int k = static_cast<int>(periods.size());
  std::vector<std::vector<double>> figures(k);
  for (int i = 0; i < k; ++i) figures[i].assign(periods[i], 0.0);
  std::vector<double> z(n);
  const int sweeps = k > 1 ? 3 : 1;
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    for (int i = 0; i < k; ++i) {
      const int m = periods[i];
      for (int t = 0; t < n; ++t) {
        z[t] = y[t];
        for (int j = 0; j < k; ++j) {
          if (j != i) z[t] -= figures[j][t % periods[j]];
        }
      }
      std::vector<double> trend = CentredMovingAverage(z, m);
      std::vector<double> sum(m, 0.0), weight(m, 0.0);
      for (int t = 0; t < n; ++t) {
        if (std::isnan(trend[t])) continue;
        // Cycles counted back from the end: recent cycles weigh more.
        const int age = (n - 1 - t) / m;
        const double w = std::pow(cycle_decay, age);
        sum[t % m] += w * (z[t] - trend[t]);
        weight[t % m] += w;
      }
      double mean = 0;
      for (int p = 0; p < m; ++p) {
        figures[i][p] = weight[p] > 0 ? sum[p] / weight[p] : 0.0;
        mean += figures[i][p] / m;
      }
      for (double& f : figures[i]) f -= mean;
    }
  }
  return figures;
}

DecompEtsModel::DecompEtsModel(std::vector<int> periods, std::vector<std::vector<double>> seasonal,
                               std::unique_ptr<EtsModel> ets, bool log_transform, int n)
    : periods_(std::move(periods)),
      seasonal_(std::move(seasonal)),
      ets_(std::move(ets)),
      log_(log_transform),
      t_(n) {}

DecompEtsModel::DecompEtsModel(const DecompEtsModel& other)
    : periods_(other.periods_),
      seasonal_(other.seasonal_),
      ets_(std::make_unique<EtsModel>(*other.ets_)),
      log_(other.log_),
      t_(other.t_) {}

double DecompEtsModel::SeasonalAt(long t) const {
  double s = 0;
  for (size_t i = 0; i < periods_.size(); ++i) s += seasonal_[i][t % periods_[i]];
  return s;
}

std::string DecompEtsModel::Name() const {
  return absl::StrCat(log_ ? "DECOMP-LOG(" : "DECOMP(", absl::StrJoin(periods_, ","), ")+",
                      ets_->Name());
}

void DecompEtsModel::Update(double y) {
  if (std::isfinite(y)) {
    const double v = log_ ? std::log1p(std::max(y, 0.0)) : y;
    ets_->Update(v - SeasonalAt(t_));
  } else {
    ets_->Update(y);
  }
  ++t_;
}

absl::StatusOr<Forecast> DecompEtsModel::Predict(int horizon, double level) const {
  PPE_ASSIGN_OR_RETURN(auto f, ets_->Predict(horizon, level));
  for (int h = 0; h < horizon; ++h) {
    const double s = SeasonalAt(t_ + h);
    for (auto* v : {&f.mean[h], &f.lower[h], &f.upper[h]}) {
      *v += s;
      if (log_) *v = std::expm1(*v);
    }
  }
  return f;
}

std::vector<NamedValue> DecompEtsModel::Parameters() const {
  std::vector<NamedValue> p = ets_->Parameters();
  for (size_t i = 0; i < periods_.size(); ++i) {
    double amp = 0;
    for (double s : seasonal_[i]) amp = std::max(amp, std::fabs(s));
    p.emplace_back(absl::StrCat("seasonal_amplitude_", periods_[i]), amp);
  }
  return p;
}

absl::StatusOr<std::unique_ptr<DecompEtsModel>> FitDecompEts(std::span<const double> y,
                                                             const DecompositionOptions& options) {
  const int n = static_cast<int>(y.size());
  std::vector<int> periods;
  for (int p : options.periods) {
    if (p >= 2 && n >= 2 * p) periods.push_back(p);
  }
  std::sort(periods.begin(), periods.end());
  periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
  if (periods.empty()) {
    return absl::FailedPreconditionError("decomposition needs two full cycles of a period");
  }
  std::vector<double> v(y.begin(), y.end());
  if (options.log_transform) {
    for (double& x : v) {
      if (x < 0) return absl::FailedPreconditionError("log decomposition needs y >= 0");
      x = std::log1p(x);
    }
  }
  auto seasonal = DecomposeSeasonal(v, periods, options.cycle_decay);
  for (int t = 0; t < n; ++t) {
    for (size_t i = 0; i < periods.size(); ++i) v[t] -= seasonal[i][t % periods[i]];
  }
  EtsFitOptions eo = options.ets;
  eo.allow_multiplicative = false;  // The adjusted series may cross zero.
  PPE_ASSIGN_OR_RETURN(auto ets, FitEtsAuto(v, 1, eo));
  return std::make_unique<DecompEtsModel>(periods, std::move(seasonal), std::move(ets),
                                          options.log_transform, n);
}

}  // namespace ppe::forecast
