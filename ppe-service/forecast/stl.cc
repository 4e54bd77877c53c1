#include "ppe-service/forecast/stl.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/forecast/arima.h"
#include "ppe-service/forecast/ets.h"
#include "ppe-service/forecast/stats.h"

namespace ppe::forecast {
namespace {

// The reference implementation's thresholds are single-precision constants;
// converting them the same way keeps ties at the window edges identical.
constexpr double kNear = static_cast<double>(0.001f);
constexpr double kFar = static_cast<double>(0.999f);

// Loess estimate at abscissa `xs` from the points nleft..nright (1-based
// abscissae; y[j - 1] is the value at j) with tricube weights of the distance
// over the half-width, times the robustness weights if `userw`. Degree 0: the
// weighted mean; degree 1: weighted local line. False if all weights are 0.
bool LoessAt(const double* y, int n, int len, int degree, double xs, int nleft, int nright,
             double* w, bool userw, const double* rw, double* ys) {
  const double range = static_cast<double>(n) - 1.0;
  double h = std::max(xs - nleft, nright - xs);
  if (len > n) h += (len - n) / 2;  // Integer division, as the reference.
  const double h9 = kFar * h;
  const double h1 = kNear * h;
  double a = 0;
  for (int j = nleft; j <= nright; ++j) {
    const double r = std::fabs(j - xs);
    double& wj = w[j - 1];
    if (r <= h9) {
      if (r <= h1) {
        wj = 1.0;
      } else {
        const double u = r / h;
        const double v = 1.0 - u * u * u;
        wj = v * v * v;
      }
      if (userw) wj *= rw[j - 1];
      a += wj;
    } else {
      wj = 0.0;
    }
  }
  if (a <= 0) return false;
  for (int j = nleft; j <= nright; ++j) w[j - 1] /= a;
  if (h > 0 && degree > 0) {
    double mean = 0;
    for (int j = nleft; j <= nright; ++j) mean += w[j - 1] * j;
    double b = xs - mean;
    double c = 0;
    for (int j = nleft; j <= nright; ++j) c += w[j - 1] * (j - mean) * (j - mean);
    if (std::sqrt(c) > kNear * range) {
      b /= c;
      for (int j = nleft; j <= nright; ++j) w[j - 1] *= b * (j - mean) + 1.0;
    }
  }
  double sum = 0;
  for (int j = nleft; j <= nright; ++j) sum += w[j - 1] * y[j - 1];
  *ys = sum;
  return true;
}

// Loess smoothing of y[0..n) with span `len`, evaluated every `jump` points
// and linearly interpolated in between. `scratch` has n elements.
void LoessSmooth(const double* y, int n, int len, int degree, int jump, bool userw,
                 const double* rw, double* ys, double* scratch) {
  if (n < 2) {
    ys[0] = y[0];
    return;
  }
  const int step = std::min(jump, n - 1);
  int nleft = 0;
  int nright = 0;
  auto estimate = [&](int i) {
    if (!LoessAt(y, n, len, degree, i, nleft, nright, scratch, userw, rw, &ys[i - 1])) {
      ys[i - 1] = y[i - 1];
    }
  };
  if (len >= n) {
    nleft = 1;
    nright = n;
    for (int i = 1; i <= n; i += step) estimate(i);
  } else if (step == 1) {
    const int half = (len + 1) / 2;
    nleft = 1;
    nright = len;
    for (int i = 1; i <= n; ++i) {
      if (i > half && nright != n) {
        ++nleft;
        ++nright;
      }
      estimate(i);
    }
  } else {
    const int half = (len + 1) / 2;
    for (int i = 1; i <= n; i += step) {
      if (i < half) {
        nleft = 1;
        nright = len;
      } else if (i >= n - half + 1) {
        nleft = n - len + 1;
        nright = n;
      } else {
        nleft = i - half + 1;
        nright = len + i - half;
      }
      estimate(i);
    }
  }
  if (step == 1) return;
  for (int i = 1; i <= n - step; i += step) {
    const double delta = (ys[i + step - 1] - ys[i - 1]) / step;
    for (int j = i + 1; j <= i + step - 1; ++j) ys[j - 1] = ys[i - 1] + delta * (j - i);
  }
  const int k = ((n - 1) / step) * step + 1;
  if (k != n) {
    estimate(n);
    if (k != n - 1) {
      const double delta = (ys[n - 1] - ys[k - 1]) / (n - k);
      for (int j = k + 1; j <= n - 1; ++j) ys[j - 1] = ys[k - 1] + delta * (j - k);
    }
  }
}

// Running mean of width len over x[0..n): n - len + 1 values.
void MovingAverage(const double* x, int n, int len, double* out) {
  double v = 0;
  for (int i = 0; i < len; ++i) v += x[i];
  out[0] = v / len;
  for (int j = 1, m = 0, k = len; j < n - len + 1; ++j, ++m, ++k) {
    v = v - x[m] + x[k];
    out[j] = v / len;
  }
}

struct StlParams {
  int np, ns, nt, nl;
  int isdeg, itdeg, ildeg;
  int nsjump, ntjump, nljump;
  int ni, no;
};

class StlRunner {
 public:
  StlRunner(std::span<const double> y, const StlParams& p)
      : y_(y),
        n_(static_cast<int>(y.size())),
        p_(p),
        rw_(n_, 0.0),
        season_(n_, 0.0),
        trend_(n_, 0.0),
        w1_(n_ + 2 * p.np),
        w2_(n_ + 2 * p.np),
        w3_(n_ + 2 * p.np),
        w4_(n_ + 2 * p.np),
        w5_(n_ + 2 * p.np) {}

  void Run() {
    bool userw = false;
    for (int k = 0;; ++k) {
      InnerLoop(userw);
      if (k + 1 > p_.no) break;
      for (int i = 0; i < n_; ++i) w1_[i] = trend_[i] + season_[i];
      RobustnessWeights();
      userw = true;
    }
    if (p_.no <= 0) std::fill(rw_.begin(), rw_.end(), 1.0);
  }

  std::vector<double>& season() { return season_; }
  std::vector<double>& trend() { return trend_; }
  std::vector<double>& weights() { return rw_; }

 private:
  void InnerLoop(bool userw) {
    const int n = n_;
    const int np = p_.np;
    for (int it = 0; it < p_.ni; ++it) {
      for (int i = 0; i < n; ++i) w1_[i] = y_[i] - trend_[i];
      CycleSubseries(userw);  // w1_ -> w2_ (n + 2 np values).
      // Low-pass filter of the cycle-subseries: w2_ -> w3_ (n values).
      MovingAverage(w2_.data(), n + 2 * np, np, w3_.data());
      MovingAverage(w3_.data(), n + np + 1, np, w1_.data());
      MovingAverage(w1_.data(), n + 2, 3, w3_.data());
      LoessSmooth(w3_.data(), n, p_.nl, p_.ildeg, p_.nljump, false, nullptr, w1_.data(),
                  w5_.data());
      for (int i = 0; i < n; ++i) season_[i] = w2_[np + i] - w1_[i];
      for (int i = 0; i < n; ++i) w1_[i] = y_[i] - season_[i];
      LoessSmooth(w1_.data(), n, p_.nt, p_.itdeg, p_.ntjump, userw, rw_.data(), trend_.data(),
                  w3_.data());
    }
  }

  // Smooths each cycle-subseries of w1_ and extends it by one value at each
  // end; the result, n + 2 np values, goes to w2_.
  void CycleSubseries(bool userw) {
    const int n = n_;
    const int np = p_.np;
    const int ns = p_.ns;
    sub_.resize(n / np + 3);
    subw_.resize(n / np + 3);
    smooth_.resize(n / np + 3);
    scratch_.resize(n / np + 3);
    for (int j = 1; j <= np; ++j) {
      const int k = (n - j) / np + 1;
      for (int i = 1; i <= k; ++i) sub_[i - 1] = w1_[(i - 1) * np + j - 1];
      if (userw) {
        for (int i = 1; i <= k; ++i) subw_[i - 1] = rw_[(i - 1) * np + j - 1];
      }
      LoessSmooth(sub_.data(), k, ns, p_.isdeg, p_.nsjump, userw, subw_.data(), &smooth_[1],
                  scratch_.data());
      if (!LoessAt(sub_.data(), k, ns, p_.isdeg, 0.0, 1, std::min(ns, k), scratch_.data(), userw,
                   subw_.data(), &smooth_[0])) {
        smooth_[0] = smooth_[1];
      }
      if (!LoessAt(sub_.data(), k, ns, p_.isdeg, k + 1.0, std::max(1, k - ns + 1), k,
                   scratch_.data(), userw, subw_.data(), &smooth_[k + 1])) {
        smooth_[k + 1] = smooth_[k];
      }
      for (int m = 1; m <= k + 2; ++m) w2_[(m - 1) * np + j - 1] = smooth_[m - 1];
    }
  }

  // Bisquare weights of |y - fit| over six times its median (fit in w1_).
  void RobustnessWeights() {
    const int n = n_;
    std::vector<double> r(n);
    for (int i = 0; i < n; ++i) r[i] = std::fabs(y_[i] - w1_[i]);
    const int mid1 = n / 2 + 1;
    const int mid2 = n - mid1 + 1;
    std::vector<double> sorted = r;
    std::nth_element(sorted.begin(), sorted.begin() + (mid1 - 1), sorted.end());
    const double a = sorted[mid1 - 1];
    std::nth_element(sorted.begin(), sorted.begin() + (mid2 - 1), sorted.end());
    const double b = sorted[mid2 - 1];
    const double cmad = 3.0 * (a + b);
    const double c9 = kFar * cmad;
    const double c1 = kNear * cmad;
    for (int i = 0; i < n; ++i) {
      if (r[i] <= c1) {
        rw_[i] = 1.0;
      } else if (r[i] <= c9) {
        const double u = r[i] / cmad;
        rw_[i] = (1.0 - u * u) * (1.0 - u * u);
      } else {
        rw_[i] = 0.0;
      }
    }
  }

  std::span<const double> y_;
  int n_;
  StlParams p_;
  std::vector<double> rw_, season_, trend_;
  std::vector<double> w1_, w2_, w3_, w4_, w5_;
  std::vector<double> sub_, subw_, smooth_, scratch_;
};

int NextOdd(double x) {
  int v = static_cast<int>(std::nearbyint(x));
  if (v % 2 == 0) ++v;
  return v;
}

int AtLeast3Odd(int w) {
  w = std::max(3, w);
  return w % 2 == 0 ? w + 1 : w;
}

int CeilTenth(int w) { return static_cast<int>(std::ceil(w / 10.0)); }

}  // namespace

absl::StatusOr<StlResult> Stl(std::span<const double> y, const StlOptions& o) {
  const int n = static_cast<int>(y.size());
  const int period = o.period;
  if (period < 2 || n <= 2 * period) {
    return absl::InvalidArgumentError(
        absl::StrCat("STL: series is not periodic or has less than two periods (n = ", n,
                     ", period = ", period, ")"));
  }
  for (double v : y) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("STL: non-finite value");
  }
  int s_window = o.s_window;
  int s_degree = o.s_degree;
  if (o.s_periodic) {
    s_window = 10 * n + 1;
    s_degree = 0;
  } else if (s_window <= 0) {
    return absl::InvalidArgumentError("STL: s_window is required (or s_periodic)");
  }
  const int l_degree = o.l_degree < 0 ? o.t_degree : o.l_degree;
  for (int d : {s_degree, o.t_degree, l_degree}) {
    if (d < 0 || d > 1) return absl::InvalidArgumentError("STL: degrees must be 0 or 1");
  }
  const int t_window =
      o.t_window > 0 ? o.t_window : NextOdd(std::ceil(1.5 * period / (1 - 1.5 / s_window)));
  const int l_window = o.l_window > 0 ? o.l_window : NextOdd(period);
  StlParams p;
  p.np = period;
  p.ns = AtLeast3Odd(s_window);
  p.nt = AtLeast3Odd(t_window);
  p.nl = AtLeast3Odd(l_window);
  p.isdeg = s_degree;
  p.itdeg = o.t_degree;
  p.ildeg = l_degree;
  p.nsjump = std::max(1, o.s_jump > 0 ? o.s_jump : CeilTenth(s_window));
  p.ntjump = std::max(1, o.t_jump > 0 ? o.t_jump : CeilTenth(t_window));
  p.nljump = std::max(1, o.l_jump > 0 ? o.l_jump : CeilTenth(l_window));
  p.ni = o.inner >= 0 ? o.inner : (o.robust ? 1 : 2);
  p.no = o.outer >= 0 ? o.outer : (o.robust ? 15 : 0);

  StlRunner runner(y, p);
  runner.Run();
  StlResult r;
  r.seasonal = std::move(runner.season());
  r.trend = std::move(runner.trend());
  r.weights = std::move(runner.weights());
  if (o.s_periodic) {
    std::vector<double> sum(period, 0.0);
    std::vector<int> count(period, 0);
    for (int t = 0; t < n; ++t) {
      sum[t % period] += r.seasonal[t];
      ++count[t % period];
    }
    for (int t = 0; t < n; ++t) r.seasonal[t] = sum[t % period] / count[t % period];
  }
  r.remainder.resize(n);
  for (int t = 0; t < n; ++t) r.remainder[t] = y[t] - r.seasonal[t] - r.trend[t];
  return r;
}

double BoxCox(double x, double lambda) {
  if (lambda < 0 && x < 0) return std::numeric_limits<double>::quiet_NaN();
  if (lambda == 0) return std::log(x);
  const double sign = x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);
  return (sign * std::pow(std::fabs(x), lambda) - 1) / lambda;
}

double InvBoxCox(double z, double lambda) {
  if (lambda < 0 && z > -1 / lambda) return std::numeric_limits<double>::quiet_NaN();
  if (lambda == 0) return std::exp(z);
  const double xx = z * lambda + 1;
  const double sign = xx > 0 ? 1.0 : (xx < 0 ? -1.0 : 0.0);
  return sign * std::pow(std::fabs(xx), 1 / lambda);
}

absl::StatusOr<MstlResult> Mstl(std::span<const double> y, const MstlOptions& o) {
  const int n = static_cast<int>(y.size());
  std::vector<int> periods;
  for (int p : o.periods) {
    if (p < 2) return absl::InvalidArgumentError(absl::StrCat("MSTL: bad period ", p));
    // R drops periods with fewer than two full cycles (for several periods).
    if (o.periods.size() == 1 || p < n / 2.0) periods.push_back(p);
  }
  std::sort(periods.begin(), periods.end());
  periods.erase(std::unique(periods.begin(), periods.end()), periods.end());
  if (periods.empty()) return absl::FailedPreconditionError("MSTL: no period with two cycles");
  if (periods.size() > 6 && o.s_windows.size() < periods.size()) {
    return absl::InvalidArgumentError("MSTL: more than 6 periods need explicit s_windows");
  }
  std::vector<double> deseas(y.begin(), y.end());
  for (double& v : deseas) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("MSTL: non-finite value");
    if (o.lambda) {
      v = BoxCox(v, *o.lambda);
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError("MSTL: Box-Cox transform of a value is not finite");
      }
    }
  }
  const int k = static_cast<int>(periods.size());
  const int iterate = k == 1 ? 1 : std::max(1, o.iterate);
  MstlResult out;
  out.periods = periods;
  out.seasonal.assign(k, std::vector<double>(n, 0.0));
  for (int sweep = 0; sweep < iterate; ++sweep) {
    for (int i = 0; i < k; ++i) {
      for (int t = 0; t < n; ++t) deseas[t] += out.seasonal[i][t];
      StlOptions so;
      so.period = periods[i];
      if (o.s_windows.empty()) {
        so.s_window = 7 + 4 * (i + 1);
      } else {
        so.s_window = o.s_windows[o.s_windows.size() == 1 ? 0 : i];
      }
      so.t_window = o.t_window;
      so.robust = o.robust;
      PPE_ASSIGN_OR_RETURN(auto fit, Stl(deseas, so));
      out.seasonal[i] = std::move(fit.seasonal);
      for (int t = 0; t < n; ++t) deseas[t] -= out.seasonal[i][t];
      out.trend = std::move(fit.trend);
    }
  }
  out.remainder.resize(n);
  for (int t = 0; t < n; ++t) out.remainder[t] = deseas[t] - out.trend[t];
  return out;
}

// ---------------------------------------------------------------------------
// StlModel

StlModel::StlModel(std::vector<int> periods, std::vector<std::vector<double>> last_cycles,
                   std::unique_ptr<Model> adjusted, std::optional<double> lambda, long n)
    : periods_(std::move(periods)),
      last_cycles_(std::move(last_cycles)),
      adjusted_(std::move(adjusted)),
      lambda_(lambda),
      t_(n) {}

StlModel::StlModel(const StlModel& other)
    : periods_(other.periods_),
      last_cycles_(other.last_cycles_),
      adjusted_(other.adjusted_->Clone()),
      lambda_(other.lambda_),
      t_(other.t_) {}

double StlModel::SeasonalAt(long t) const {
  double s = 0;
  for (size_t i = 0; i < periods_.size(); ++i) s += last_cycles_[i][t % periods_[i]];
  return s;
}

std::string StlModel::Name() const {
  return absl::StrCat(periods_.size() > 1 ? "MSTL(" : "STL(", absl::StrJoin(periods_, ","),
                      lambda_ ? absl::StrCat(";lambda=", *lambda_) : "", ")+", adjusted_->Name());
}

void StlModel::Update(double y) {
  double v = y;
  if (std::isfinite(v) && lambda_) v = BoxCox(v, *lambda_);
  adjusted_->Update(std::isfinite(v) ? v - SeasonalAt(t_) : v);
  ++t_;
}

absl::StatusOr<Forecast> StlModel::Predict(int horizon, double level) const {
  PPE_ASSIGN_OR_RETURN(auto f, adjusted_->Predict(horizon, level));
  for (int h = 0; h < horizon; ++h) {
    const double s = SeasonalAt(t_ + h);
    for (auto* v : {&f.mean[h], &f.lower[h], &f.upper[h]}) {
      *v += s;
      if (lambda_) *v = InvBoxCox(*v, *lambda_);
    }
  }
  return f;
}

std::vector<NamedValue> StlModel::Parameters() const {
  std::vector<NamedValue> p = adjusted_->Parameters();
  for (size_t i = 0; i < periods_.size(); ++i) {
    const auto [lo, hi] = std::minmax_element(last_cycles_[i].begin(), last_cycles_[i].end());
    p.emplace_back(absl::StrCat("seasonal_range_", periods_[i]), *hi - *lo);
  }
  if (lambda_) p.emplace_back("lambda", *lambda_);
  return p;
}

absl::StatusOr<std::unique_ptr<StlModel>> FitStl(std::span<const double> y,
                                                 const StlModelOptions& options) {
  PPE_ASSIGN_OR_RETURN(auto d, Mstl(y, options.mstl));
  const int n = static_cast<int>(y.size());
  std::vector<double> adjusted(n);
  // The seasonally adjusted series (R's seasadj): trend + remainder.
  for (int t = 0; t < n; ++t) adjusted[t] = d.trend[t] + d.remainder[t];
  std::vector<std::vector<double>> last_cycles;
  for (size_t i = 0; i < d.periods.size(); ++i) {
    const int p = d.periods[i];
    std::vector<double> cycle(p);
    for (int t = n - p; t < n; ++t) cycle[t % p] = d.seasonal[i][t];
    last_cycles.push_back(std::move(cycle));
  }
  std::unique_ptr<Model> inner;
  if (options.method == StlMethod::kArima) {
    ArimaAutoOptions ao;
    ao.period = 1;
    PPE_ASSIGN_OR_RETURN(auto m, FitArimaAuto(adjusted, ao));
    inner = std::move(m);
  } else {
    PPE_ASSIGN_OR_RETURN(auto m, FitEtsAuto(adjusted, 1));
    inner = std::move(m);
  }
  return std::make_unique<StlModel>(d.periods, std::move(last_cycles), std::move(inner),
                                    options.mstl.lambda, n);
}

// ---------------------------------------------------------------------------
// SeasonalShape

double SeasonalShape::At(int64_t t) const {
  if (!(level > 0)) return 1.0;
  double s = level;
  for (size_t i = 0; i < periods.size(); ++i) {
    const int64_t p = periods[i];
    s += last_cycles[i][((t - origin) % p + p) % p];
  }
  return std::max(0.0, s / level);
}

absl::StatusOr<SeasonalShape> SeasonalShapeOf(std::span<const double> y,
                                              const std::vector<int>& periods, int64_t origin) {
  MstlOptions o;
  o.periods = periods;
  PPE_ASSIGN_OR_RETURN(auto d, Mstl(y, o));
  const int n = static_cast<int>(y.size());
  SeasonalShape shape;
  shape.periods = d.periods;
  shape.origin = origin;
  const int longest = d.periods.back();
  double level = 0;
  for (int t = n - longest; t < n; ++t) level += d.trend[t];
  shape.level = level / longest;
  if (!(shape.level > 0)) {
    return absl::FailedPreconditionError("seasonal shape: the series level is not positive");
  }
  for (size_t i = 0; i < d.periods.size(); ++i) {
    const int p = d.periods[i];
    std::vector<double> cycle(p);
    for (int t = n - p; t < n; ++t) cycle[t % p] = d.seasonal[i][t];
    shape.last_cycles.push_back(std::move(cycle));
  }
  return shape;
}

namespace {

// The smallest k with P(N <= k) >= p for N ~ Poisson(mean); a normal
// approximation above a mean of 50 (where exp(-mean) starts to lose digits).
double PoissonQuantile(double mean, double p) {
  if (mean <= 0) return 0;
  if (mean > 50) return std::max(0.0, std::ceil(mean + NormalQuantile(p) * std::sqrt(mean)));
  double pmf = std::exp(-mean), cdf = pmf;
  int k = 0;
  while (cdf < p && k < 1000) {
    ++k;
    pmf *= mean / k;
    cdf += pmf;
  }
  return k;
}

}  // namespace

absl::StatusOr<Forecast> PooledForecast(std::span<const double> y, int64_t y_origin,
                                        const SeasonalShape& shape, int horizon, double level) {
  if (y.empty()) return absl::InvalidArgumentError("pooled forecast: empty series");
  if (horizon < 1) return absl::InvalidArgumentError("horizon must be >= 1");
  if (!(level > 0 && level < 100)) return absl::InvalidArgumentError("level must be in (0, 100)");
  double total = 0;
  double weight = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) continue;
    total += std::max(0.0, y[i]);
    weight += shape.At(y_origin + static_cast<int64_t>(i));
  }
  const double base = weight > 0 ? total / weight : 0.0;
  const double tail = 0.5 - level / 200.0;  // each side of the central interval
  const int64_t next = y_origin + static_cast<int64_t>(y.size());
  Forecast f;
  f.level = level;
  for (int h = 0; h < horizon; ++h) {
    const double mean = base * shape.At(next + h);
    f.mean.push_back(mean);
    f.lower.push_back(PoissonQuantile(mean, tail));
    f.upper.push_back(PoissonQuantile(mean, 1 - tail));
  }
  return f;
}

}  // namespace ppe::forecast
