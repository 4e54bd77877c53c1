#include "ppe-service/forecast/intermittent.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::forecast {

absl::StatusOr<std::unique_ptr<IntermittentModel>> IntermittentModel::Fit(std::span<const double> y,
                                                                          IntermittentMethod method,
                                                                          double alpha) {
  if (!(alpha > 0 && alpha <= 1)) return absl::InvalidArgumentError("alpha must be in (0, 1]");
  auto m = std::make_unique<IntermittentModel>(method, alpha);
  double nonzero = 0;
  for (double v : y) nonzero += std::isfinite(v) && v > 0;
  if (nonzero == 0) return absl::InvalidArgumentError("no demand in the series");
  // TSB starts from the share of buckets with demand; all start from the
  // first size and (Croston, SBA) the first interval, as R's croston does.
  m->prob_ = nonzero / static_cast<double>(y.size());
  double sse = 0;
  int errors = 0;
  for (double v : y) {
    if (m->started_) {
      const double e = v - m->Mean();
      sse += e * e;
      ++errors;
    }
    m->Update(v);
  }
  m->sigma2_ = errors > 0 ? sse / errors : 0;
  return m;
}

void IntermittentModel::Update(double y) {
  if (!std::isfinite(y) || y < 0) y = 0;
  ++since_;
  if (method_ == IntermittentMethod::kTsb && started_) prob_ += alpha_ * ((y > 0) - prob_);
  if (y <= 0) return;
  if (!started_) {
    size_ = y;
    interval_ = since_;
    started_ = true;
  } else {
    size_ += alpha_ * (y - size_);
    interval_ += alpha_ * (since_ - interval_);
  }
  since_ = 0;
  sizes_.push_back(y);
  if (sizes_.size() > kSizesKept) sizes_.pop_front();
}

double IntermittentModel::Probability() const {
  if (!started_) return 0;
  if (method_ == IntermittentMethod::kTsb) return std::clamp(prob_, 0.0, 1.0);
  return std::clamp(1.0 / std::max(1.0, interval_), 0.0, 1.0);
}

double IntermittentModel::Mean() const {
  if (!started_) return 0;
  switch (method_) {
    case IntermittentMethod::kCroston:
      return size_ / interval_;
    case IntermittentMethod::kSba:
      return (1 - alpha_ / 2) * size_ / interval_;
    case IntermittentMethod::kTsb:
      return prob_ * size_;
  }
  return 0;
}

absl::StatusOr<Forecast> IntermittentModel::Predict(int horizon, double level) const {
  if (horizon < 1) return absl::InvalidArgumentError("horizon must be >= 1");
  if (!(level > 0 && level < 100)) return absl::InvalidArgumentError("level must be in (0, 100)");
  Forecast f;
  f.level = level;
  // Croston and SBA keep their rate through any run of zeros; for the bound,
  // demand is taken to be no likelier than once in the current gap.
  double p = Probability();
  if (method_ != IntermittentMethod::kTsb && since_ > 0) p = std::min(p, 1.0 / (since_ + 1));
  // Upper bound: P(no demand) = 1 - p, else a recent size, by rank.
  const double q = 0.5 + level / 200.0;
  double upper = 0;
  if (p > 0 && 1 - p < q && !sizes_.empty()) {
    std::vector<double> sorted(sizes_.begin(), sizes_.end());
    std::sort(sorted.begin(), sorted.end());
    const double within = std::clamp((q - (1 - p)) / p, 0.0, 1.0);
    const size_t i = std::min(
        sorted.size() - 1, static_cast<size_t>(std::ceil(within * sorted.size())) - (within > 0));
    upper = sorted[i];
  }
  const double mean = Mean();
  f.mean.assign(horizon, mean);
  f.lower.assign(horizon, 0.0);
  f.upper.assign(horizon, upper);
  return f;
}

bool IsIntermittent(std::span<const double> y) {
  if (y.empty()) return false;
  size_t zeros = 0, demand = 0;
  for (double v : y) {
    zeros += v == 0;
    demand += v > 0;
  }
  return demand >= 1 && zeros > kIntermittentZeroShare * static_cast<double>(y.size());
}

absl::StatusOr<std::unique_ptr<Model>> FitIntermittent(std::span<const double> y) {
  std::unique_ptr<IntermittentModel> best;
  for (IntermittentMethod m :
       {IntermittentMethod::kSba, IntermittentMethod::kCroston, IntermittentMethod::kTsb}) {
    PPE_ASSIGN_OR_RETURN(std::unique_ptr<IntermittentModel> fit, IntermittentModel::Fit(y, m));
    if (!best || fit->Sigma2() < best->Sigma2()) best = std::move(fit);
  }
  return std::unique_ptr<Model>(std::move(best));
}

std::string IntermittentModel::Name() const {
  switch (method_) {
    case IntermittentMethod::kCroston:
      return "CROSTON";
    case IntermittentMethod::kSba:
      return "SBA";
    case IntermittentMethod::kTsb:
      return "TSB";
  }
  return "";
}

std::vector<NamedValue> IntermittentModel::Parameters() const {
  return {
      {"alpha", alpha_},
      {"size", size_},
      {"interval", method_ == IntermittentMethod::kTsb ? 1 / std::max(1e-12, prob_) : interval_},
      {"probability", Probability()}};
}

absl::StatusOr<std::unique_ptr<SeasonalSparseModel>> SeasonalSparseModel::Fit(
    std::span<const double> y, int period, int cycles) {
  if (period < 2 || cycles < 1) return absl::InvalidArgumentError("period must be >= 2");
  const size_t kept = static_cast<size_t>(period) * cycles;
  if (y.size() < kept) {
    return absl::InvalidArgumentError(
        absl::StrCat("the series is shorter than ", cycles, " cycles of ", period));
  }
  auto m = std::make_unique<SeasonalSparseModel>(period, cycles);
  m->ring_.resize(kept);
  for (size_t t = 0; t < kept; ++t) {
    m->ring_[t] = std::isfinite(y[t]) && y[t] > 0 ? static_cast<float>(y[t]) : 0.0f;
  }
  double sse = 0;
  for (size_t t = kept; t < y.size(); ++t) {
    const double e = y[t] - m->At(0).mean;
    sse += e * e;
    m->Update(y[t]);
  }
  m->sigma2_ = y.size() > kept ? sse / static_cast<double>(y.size() - kept) : 0;
  return m;
}

std::string SeasonalSparseModel::Name() const {
  return absl::StrCat("SEASONAL-SPARSE[", period_, "x", cycles_, "]");
}

void SeasonalSparseModel::Update(double y) {
  ring_[pos_] = std::isfinite(y) && y > 0 ? static_cast<float>(y) : 0.0f;
  if (++pos_ == ring_.size()) pos_ = 0;
}

absl::StatusOr<Forecast> SeasonalSparseModel::Predict(int horizon, double level) const {
  if (horizon < 1) return absl::InvalidArgumentError("horizon must be >= 1");
  if (!(level > 0 && level < 100)) return absl::InvalidArgumentError("level must be in (0, 100)");
  Forecast f;
  f.level = level;
  for (int h = 0; h < horizon; ++h) {
    const Phase phase = At(h);
    f.mean.push_back(phase.mean);
    f.lower.push_back(phase.low);
    f.upper.push_back(phase.high);
  }
  return f;
}

SeasonalSparseModel::Phase SeasonalSparseModel::At(int h) const {
  // ring_[pos_] is the oldest value, one whole ring before the next bucket:
  // the next bucket's phase is at pos_, pos_ + period_, ...
  Phase out{0, std::numeric_limits<double>::infinity(), 0};
  for (int c = 0; c < cycles_; ++c) {
    const double v = ring_[(pos_ + h + static_cast<size_t>(c) * period_) % ring_.size()];
    out.mean += v;
    out.low = std::min(out.low, v);
    out.high = std::max(out.high, v);
  }
  out.mean /= cycles_;
  return out;
}

std::vector<NamedValue> SeasonalSparseModel::Parameters() const {
  return {{"period", period_}, {"cycles", cycles_}, {"sigma2", sigma2_}};
}

namespace {

double MeanSquaredError(std::span<const double> actual, const std::vector<double>& forecast) {
  double sse = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    sse += (actual[i] - forecast[i]) * (actual[i] - forecast[i]);
  }
  return sse / static_cast<double>(actual.size());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> FitSparse(std::span<const double> y,
                                                 const std::vector<int>& periods_in) {
  constexpr int kCycles = 3;
  const int n = static_cast<int>(y.size());
  std::vector<int> periods;  // kCycles cycles to fit on, and one more to judge
  for (int p : periods_in) {
    if (p >= 2 && n >= (kCycles + 1) * p) periods.push_back(p);
  }
  if (periods.empty()) return FitIntermittent(y);
  const int holdout = *std::max_element(periods.begin(), periods.end());
  std::span<const double> train = y.first(n - holdout);
  std::span<const double> test = y.last(holdout);
  double best_error = std::numeric_limits<double>::infinity();
  if (auto m = FitIntermittent(train); m.ok()) {
    if (auto f = (*m)->Predict(holdout, 95); f.ok()) best_error = MeanSquaredError(test, f->mean);
  }
  int best_period = 0;
  for (int p : periods) {
    auto m = SeasonalSparseModel::Fit(train, p, kCycles);
    if (!m.ok()) continue;
    absl::StatusOr<Forecast> f = (*m)->Predict(holdout, 95);
    if (!f.ok()) continue;
    const double error = MeanSquaredError(test, f->mean);
    if (error < best_error) {
      best_error = error;
      best_period = p;
    }
  }
  if (best_period == 0) return FitIntermittent(y);
  PPE_ASSIGN_OR_RETURN(auto model, SeasonalSparseModel::Fit(y, best_period, kCycles));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace ppe::forecast
