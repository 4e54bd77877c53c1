#include "ppe-service/forecast/forecaster.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/forecast/arima.h"
#include "ppe-service/forecast/decomposition.h"
#include "ppe-service/forecast/ets.h"
#include "ppe-service/forecast/intermittent.h"
#include "ppe-service/forecast/series_io.h"
#include "ppe-service/forecast/stats.h"
#include "ppe-service/forecast/stl.h"

namespace ppe::forecast {

absl::StatusOr<ModelFamily> ParseModelFamily(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "auto") return ModelFamily::kAuto;
  if (n == "ets") return ModelFamily::kEts;
  if (n == "arima") return ModelFamily::kArima;
  if (n == "decomp" || n == "decomp_ets") return ModelFamily::kDecompEts;
  if (n == "stl" || n == "mstl" || n == "stlf") return ModelFamily::kStl;
  if (n == "snaive") return ModelFamily::kSeasonalNaive;
  if (n == "naive") return ModelFamily::kNaive;
  return absl::InvalidArgumentError(absl::StrCat("unknown model '", std::string(name),
                                                 "' (auto|ets|arima|decomp|stl|snaive|naive)"));
}

// ---------------------------------------------------------------------------
// SeasonalNaiveModel

SeasonalNaiveModel::SeasonalNaiveModel(std::span<const double> y, int period)
    : period_(std::max(1, std::min<int>(period, static_cast<int>(y.size())))),
      n_(static_cast<int>(y.size())) {
  last_.assign(y.end() - period_, y.end());
  double sse = 0;
  int count = 0;
  for (size_t t = period_; t < y.size(); ++t) {
    sse += (y[t] - y[t - period_]) * (y[t] - y[t - period_]);
    ++count;
  }
  sigma2_ = count > 0 ? sse / count : 0.0;
}

std::string SeasonalNaiveModel::Name() const {
  return period_ > 1 ? absl::StrCat("SNAIVE[", period_, "]") : "NAIVE";
}

void SeasonalNaiveModel::Update(double y) {
  if (!std::isfinite(y)) y = last_[pos_];
  last_[pos_] = y;
  if (++pos_ == period_) pos_ = 0;
  ++n_;
}

absl::StatusOr<Forecast> SeasonalNaiveModel::Predict(int horizon, double level) const {
  if (horizon < 1) return absl::InvalidArgumentError("horizon must be >= 1");
  if (!(level > 0 && level < 100)) return absl::InvalidArgumentError("level must be in (0, 100)");
  Forecast f;
  f.level = level;
  const double z = NormalQuantile(0.5 + level / 200.0);
  for (int h = 0; h < horizon; ++h) {
    const double mean = last_[(pos_ + h) % period_];
    const double sd = std::sqrt(sigma2_ * (1 + h / period_));
    f.mean.push_back(mean);
    f.lower.push_back(mean - z * sd);
    f.upper.push_back(mean + z * sd);
  }
  return f;
}

double SeasonalNaiveModel::LogLikelihood() const {
  const int k = std::max(n_ - period_, 1);
  if (!(sigma2_ > 0)) return std::numeric_limits<double>::infinity();
  return -0.5 * k * (std::log(2 * M_PI * sigma2_) + 1);
}

double SeasonalNaiveModel::Aicc() const { return -2 * LogLikelihood() + 2; }

std::vector<NamedValue> SeasonalNaiveModel::Parameters() const {
  return {{"period", period_}, {"sigma2", sigma2_}};
}

// ---------------------------------------------------------------------------
// Fit

namespace {

int SmallestPeriod(const std::vector<int>& periods, int max_period) {
  int best = 1;
  for (int p : periods) {
    if (p >= 2 && p <= max_period && (best == 1 || p < best)) best = p;
  }
  return best;
}

// One candidate of the automatic selection: a family, and for a seasonal
// naive forecast its period (0: the smallest).
struct Candidate {
  ModelFamily family;
  int period = 0;
};

absl::StatusOr<std::unique_ptr<Model>> FitFamily(std::span<const double> y,
                                                 const FitOptions& options, ModelFamily family,
                                                 int snaive_period = 0) {
  const int n = static_cast<int>(y.size());
  switch (family) {
    case ModelFamily::kEts: {
      const int period = SmallestPeriod(options.periods, EtsFitOptions().max_period);
      if (!options.ets_spec.empty()) {
        PPE_ASSIGN_OR_RETURN(auto spec, EtsSpec::Parse(options.ets_spec, period));
        PPE_ASSIGN_OR_RETURN(auto m, FitEts(y, spec));
        return std::unique_ptr<Model>(std::move(m));
      }
      PPE_ASSIGN_OR_RETURN(auto m, FitEtsAuto(y, period));
      return std::unique_ptr<Model>(std::move(m));
    }
    case ModelFamily::kArima: {
      if (!options.arima_order.empty()) {
        const auto& v = options.arima_order;
        if (v.size() < 6) return absl::InvalidArgumentError("ARIMA order needs p,d,q,P,D,Q");
        ArimaOrder o{v[0],
                     v[1],
                     v[2],
                     v[3],
                     v[4],
                     v[5],
                     SmallestPeriod(options.periods, std::numeric_limits<int>::max()),
                     v.size() > 6 && v[6] != 0};
        PPE_ASSIGN_OR_RETURN(auto m, FitArima(y, o, /*exact=*/true));
        return std::unique_ptr<Model>(std::move(m));
      }
      ArimaAutoOptions ao;
      ao.period = SmallestPeriod(options.periods, 350);
      PPE_ASSIGN_OR_RETURN(auto m, FitArimaAuto(y, ao));
      return std::unique_ptr<Model>(std::move(m));
    }
    case ModelFamily::kDecompEts: {
      DecompositionOptions d;
      d.periods = options.periods;
      PPE_ASSIGN_OR_RETURN(auto m, FitDecompEts(y, d));
      return std::unique_ptr<Model>(std::move(m));
    }
    case ModelFamily::kStl: {
      StlModelOptions so;
      for (int p : options.periods) {
        if (p >= 2 && n > 2 * p) so.mstl.periods.push_back(p);
      }
      if (so.mstl.periods.empty()) {
        return absl::FailedPreconditionError("STL needs more than two cycles of a period");
      }
      PPE_ASSIGN_OR_RETURN(auto m, FitStl(y, so));
      return std::unique_ptr<Model>(std::move(m));
    }
    case ModelFamily::kSeasonalNaive: {
      const int p = snaive_period > 0
                        ? snaive_period
                        : SmallestPeriod(options.periods, std::numeric_limits<int>::max());
      return std::unique_ptr<Model>(std::make_unique<SeasonalNaiveModel>(y, n > p ? p : 1));
    }
    case ModelFamily::kNaive:
      return std::unique_ptr<Model>(std::make_unique<SeasonalNaiveModel>(y, 1));
    case ModelFamily::kAuto:
      break;
  }
  return absl::InvalidArgumentError("FitFamily: kAuto");
}

std::vector<Candidate> AutoCandidates(int n, const FitOptions& options) {
  std::vector<Candidate> c = {{ModelFamily::kEts}};
  int usable = 0;
  bool long_period = false;
  for (int p : options.periods) {
    if (p >= 2 && n >= 2 * p) ++usable;
    if (p > EtsFitOptions().max_period && n > 2 * p) long_period = true;
  }
  // Long or several seasonalities: STL/MSTL (stl.h); one short period: the
  // classical decomposition (ETS fits that seasonality itself too).
  if (usable > 1 || long_period) {
    if (options.decomposition != Decomposition::kClassical) c.push_back({ModelFamily::kStl});
    if (options.decomposition != Decomposition::kStl) c.push_back({ModelFamily::kDecompEts});
  } else if (usable > 0) {
    c.push_back({ModelFamily::kDecompEts});
  }
  // ARIMA uses the smallest period up to 350 (seasonal differencing and lags).
  if (options.include_arima && n <= 5000) c.push_back({ModelFamily::kArima});
  // Seasonal naive of the periods with two cycles, in increasing order.
  std::vector<int> snaive;
  for (int p : options.periods) {
    if (p >= 2 && n >= 2 * p) snaive.push_back(p);
  }
  std::sort(snaive.begin(), snaive.end());
  snaive.erase(std::unique(snaive.begin(), snaive.end()), snaive.end());
  if (!snaive.empty() && options.snaive == SeasonalNaiveCandidates::kLongest) {
    snaive.erase(snaive.begin(), snaive.end() - 1);
  } else if (!snaive.empty() && options.snaive == SeasonalNaiveCandidates::kSmallest) {
    snaive.resize(1);
  }
  for (int p : snaive) c.push_back({ModelFamily::kSeasonalNaive, p});
  c.push_back({ModelFamily::kNaive});
  return c;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Fit(std::span<const double> y_in,
                                           const FitOptions& options) {
  if (y_in.empty()) return absl::InvalidArgumentError("the series is empty");
  PPE_ASSIGN_OR_RETURN(auto filled, FillMissing(std::vector<double>(y_in.begin(), y_in.end())));
  const std::vector<double>& y = filled;
  const int n = static_cast<int>(y.size());
  for (int p : options.periods) {
    if (p < 1) return absl::InvalidArgumentError(absl::StrCat("bad period ", p));
  }
  const bool constant = std::all_of(y.begin(), y.end(), [&](double v) { return v == y[0]; });
  if (options.family != ModelFamily::kAuto) {
    if (constant && options.family != ModelFamily::kSeasonalNaive) {
      return FitFamily(y, options, ModelFamily::kNaive);
    }
    return FitFamily(y, options, options.family);
  }
  // Too short or flat for anything else.
  if (n < 8 || constant) return FitFamily(y, options, ModelFamily::kNaive);
  // Mostly zeros: Croston, SBA or TSB (intermittent.h), or a seasonal naive
  // forecast when the demand recurs at the same phase of a period.
  if (IsIntermittent(y)) {
    std::vector<int> periods = options.periods;
    periods.insert(periods.end(), options.sparse_periods.begin(), options.sparse_periods.end());
    std::sort(periods.begin(), periods.end());
    periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
    return FitSparse(y, periods);
  }

  std::vector<Candidate> candidates = AutoCandidates(n, options);
  int max_period = 1;
  for (int p : options.periods) max_period = std::max(max_period, p);
  int holdout = options.holdout;
  if (holdout <= 0) {
    holdout = max_period > 48 && n >= kWholeCycleHoldoutCycles * max_period
                  ? max_period
                  : std::max(std::min(max_period, 48), 8);
  }
  holdout = std::min(holdout, n / 5);
  std::vector<std::pair<double, Candidate>> ranked;
  if (holdout >= 2 && candidates.size() > 1) {
    std::span<const double> train(y.data(), n - holdout);
    std::span<const double> test(y.data() + n - holdout, holdout);
    const int scale_period = SmallestPeriod(options.periods, std::numeric_limits<int>::max());
    for (const Candidate& f : candidates) {
      auto m = FitFamily(train, options, f.family, f.period);
      if (!m.ok()) continue;
      auto fc = (*m)->Predict(holdout, 95);
      if (!fc.ok()) continue;
      double err = Mase(train, test, fc->mean, scale_period);
      if (std::isnan(err)) err = Smape(test, fc->mean);
      if (std::isfinite(err)) ranked.emplace_back(err, f);
    }
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  if (ranked.empty()) ranked.emplace_back(0.0, candidates.front());
  const int k = options.combine > 0
                    ? std::clamp(options.combine, 1, static_cast<int>(ranked.size()))
                    : static_cast<int>(ranked.size());
  std::vector<std::unique_ptr<Model>> members;
  for (const auto& [err, candidate] : ranked) {
    if (static_cast<int>(members.size()) == k) break;
    if (options.combine_within > 0 && !members.empty() &&
        err > options.combine_within * ranked.front().first) {
      break;
    }
    auto model = FitFamily(y, options, candidate.family, candidate.period);
    if (model.ok()) members.push_back(std::move(*model));
  }
  if (members.empty()) return FitFamily(y, options, ModelFamily::kNaive);
  if (members.size() == 1) return std::move(members.front());
  return std::unique_ptr<Model>(
      std::make_unique<CombinationModel>(std::move(members), options.combine_median));
}

// ---------------------------------------------------------------------------
// CombinationModel

CombinationModel::CombinationModel(std::vector<std::unique_ptr<Model>> members, bool median)
    : members_(std::move(members)), median_(median) {}

CombinationModel::CombinationModel(const CombinationModel& other) : median_(other.median_) {
  for (const auto& m : other.members_) members_.push_back(m->Clone());
}

std::string CombinationModel::Name() const {
  std::vector<std::string> names;
  for (const auto& m : members_) names.push_back(m->Name());
  return absl::StrCat("COMB(", absl::StrJoin(names, " + "), ")");
}

void CombinationModel::Update(double y) {
  for (auto& m : members_) m->Update(y);
}

absl::StatusOr<Forecast> CombinationModel::Predict(int horizon, double level) const {
  Forecast out;
  out.level = level;
  out.mean.assign(horizon, 0.0);
  out.lower.assign(horizon, 0.0);
  out.upper.assign(horizon, 0.0);
  std::vector<Forecast> fs;
  for (const auto& m : members_) {
    PPE_ASSIGN_OR_RETURN(auto f, m->Predict(horizon, level));
    fs.push_back(std::move(f));
  }
  std::vector<double> v(fs.size());
  // The median (mean of the middle two for an even count) or the mean of v.
  auto combine = [&](auto member) {
    for (size_t i = 0; i < fs.size(); ++i) v[i] = member(fs[i]);
    if (!median_) return std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    std::sort(v.begin(), v.end());
    const size_t m = v.size() / 2;
    return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  };
  for (int h = 0; h < horizon; ++h) {
    out.mean[h] = combine([h](const Forecast& f) { return f.mean[h]; });
    out.lower[h] = combine([h](const Forecast& f) { return f.lower[h]; });
    out.upper[h] = combine([h](const Forecast& f) { return f.upper[h]; });
  }
  return out;
}

double CombinationModel::LogLikelihood() const { return members_.front()->LogLikelihood(); }
double CombinationModel::Aicc() const { return members_.front()->Aicc(); }
double CombinationModel::Sigma2() const { return members_.front()->Sigma2(); }

std::vector<NamedValue> CombinationModel::Parameters() const {
  std::vector<NamedValue> out;
  for (size_t i = 0; i < members_.size(); ++i) {
    for (const auto& [name, value] : members_[i]->Parameters()) {
      out.emplace_back(absl::StrCat("m", i + 1, ".", name), value);
    }
  }
  return out;
}

absl::StatusOr<Forecast> FitAndPredict(std::span<const double> y, const FitOptions& options,
                                       int horizon, double level) {
  PPE_ASSIGN_OR_RETURN(auto model, Fit(y, options));
  return (model)->Predict(horizon, level);
}

}  // namespace ppe::forecast
