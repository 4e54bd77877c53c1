#include "ppe-service/forecast/arima.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ppe-service/forecast/decomposition.h"
#include "ppe-service/forecast/least_squares.h"
#include "ppe-service/forecast/optimizer.h"
#include "ppe-service/forecast/stats.h"

namespace ppe::forecast {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Above this state dimension (seasonal terms of periods above ~60) the
// exact-likelihood optimisation is skipped: the CSS estimates are kept and their
// exact likelihood is evaluated once. One evaluation costs O(p^3) for the
// autocovariances (p: expanded AR order) plus O(n r) for the filter.
constexpr int kMaxExactStates = 120;

// Partial autocorrelations (tanh of free values) -> stationary AR coefficients.
std::vector<double> PacfToAr(std::span<const double> u) {
  const int p = static_cast<int>(u.size());
  std::vector<double> phi(p), prev(p);
  for (int k = 0; k < p; ++k) {
    const double r = std::tanh(u[k]);
    prev = phi;
    phi[k] = r;
    for (int j = 0; j < k; ++j) phi[j] = prev[j] - r * prev[k - 1 - j];
  }
  return phi;
}

// Parameter layout: ar[p], ma[q], sar[P], sma[Q], mean?
struct Layout {
  ArimaOrder o;
  int size() const { return o.p + o.q + o.sp + o.sq + (o.constant ? 1 : 0); }
};

struct Expanded {
  std::vector<double> ar;  // x_t = sum ar[i-1] x_{t-i} + ...
  std::vector<double> ma;  // ... + e_t + sum ma[j-1] e_{t-j}
  double mean = 0;
};

// Natural coefficients (ar, ma, sar, sma, mean) -> expanded polynomials.
Expanded Expand(const ArimaOrder& o, std::span<const double> coef) {
  Expanded e;
  const int m = o.period;
  std::span<const double> ar = coef.subspan(0, o.p), ma = coef.subspan(o.p, o.q),
                          sar = coef.subspan(o.p + o.q, o.sp),
                          sma = coef.subspan(o.p + o.q + o.sp, o.sq);
  e.ar.assign(o.p + m * o.sp, 0.0);
  for (int i = 0; i < o.p; ++i) e.ar[i] += ar[i];
  for (int j = 0; j < o.sp; ++j) {
    e.ar[(j + 1) * m - 1] += sar[j];
    for (int i = 0; i < o.p; ++i) e.ar[(j + 1) * m + i] -= ar[i] * sar[j];
  }
  e.ma.assign(o.q + m * o.sq, 0.0);
  for (int i = 0; i < o.q; ++i) e.ma[i] += ma[i];
  for (int j = 0; j < o.sq; ++j) {
    e.ma[(j + 1) * m - 1] += sma[j];
    for (int i = 0; i < o.q; ++i) e.ma[(j + 1) * m + i] += ma[i] * sma[j];
  }
  e.mean = o.constant ? coef[o.p + o.q + o.sp + o.sq] : 0.0;
  return e;
}

// Free optimisation vector -> natural coefficients (AR blocks via PACF).
std::vector<double> ToNatural(const ArimaOrder& o, std::span<const double> x) {
  std::vector<double> c(x.begin(), x.end());
  auto ar = PacfToAr(x.subspan(0, o.p));
  std::copy(ar.begin(), ar.end(), c.begin());
  auto sar = PacfToAr(x.subspan(o.p + o.q, o.sp));
  std::copy(sar.begin(), sar.end(), c.begin() + o.p + o.q);
  return c;
}

bool Invertible(const ArimaOrder& o, std::span<const double> c, double radius) {
  return RootsOutside(c.subspan(o.p, o.q), radius) &&
         RootsOutside(c.subspan(o.p + o.q + o.sp, o.sq), radius);
}

bool Stationary(const ArimaOrder& o, std::span<const double> c, double radius) {
  std::vector<double> ar(c.begin(), c.begin() + o.p),
      sar(c.begin() + o.p + o.q, c.begin() + o.p + o.q + o.sp);
  for (double& v : ar) v = -v;
  for (double& v : sar) v = -v;
  return RootsOutside(ar, radius) && RootsOutside(sar, radius);
}

// Conditional residuals of the ARMA part, e_t for t >= ncond = len(ar) (the
// earlier ones taken as zero), into `resid` (size n - ncond); returns their sum
// of squares. R's CSS objective is 0.5 log(that / (n - ncond)).
double CssResiduals(std::span<const double> w, const Expanded& e, std::span<double> resid) {
  const int n = static_cast<int>(w.size());
  const int ncond = static_cast<int>(e.ar.size());
  std::vector<std::pair<int, double>> ar, ma;
  for (size_t i = 0; i < e.ar.size(); ++i) {
    if (e.ar[i] != 0) ar.emplace_back(static_cast<int>(i) + 1, e.ar[i]);
  }
  for (size_t j = 0; j < e.ma.size(); ++j) {
    if (e.ma[j] != 0) ma.emplace_back(static_cast<int>(j) + 1, e.ma[j]);
  }
  double ssq = 0;
  for (int t = ncond; t < n; ++t) {
    double v = w[t] - e.mean;
    for (const auto& [lag, a] : ar) v -= a * (w[t - lag] - e.mean);
    for (const auto& [lag, b] : ma) {
      if (t - lag >= ncond) v -= b * resid[t - lag - ncond];
    }
    resid[t - ncond] = v;
    ssq += v * v;
  }
  return ssq;
}

// Kalman filter for the ARMA part in Harvey's state-space form.
struct KalmanOut {
  double loglik = -kInf;
  double sigma2 = 0;
  double sumlog = 0;         // sum_t log F_t (unit innovation variance).
  std::vector<double> a;     // Predicted state for the next observation.
  std::vector<double> gain;  // Predictive gain T P Z' / F at the end: a_next = T a + gain v.
};

// First column of the stationary state covariance of Harvey's form (unit
// innovation variance), Cov(alpha_t, x_t), from the autocovariances gamma(k)
// and the psi weights of the ARMA process:
//   alpha_t(i) = sum_k phi_{i+1+k} x_{t-1-k} + theta_{i+k} e_{t-k}, so
//   Sigma(i, 0) = sum_k phi_{i+1+k} gamma(k+1) + theta_{i+k} psi_k.
// gamma(0..p) solve the (p+1)-equation Yule-Walker system of an ARMA process,
// gamma(k) - sum_i phi_i gamma(|k-i|) = sum_{j>=k} theta_j psi_{j-k}; higher
// lags follow from the recursion. O(p^3 + r^2); empty if not stationary.
Eigen::VectorXd StationaryFirstColumn(const Eigen::VectorXd& phi, const Eigen::VectorXd& theta,
                                      int p) {
  const int r = static_cast<int>(phi.size());  // theta(0) = 1; both padded to r.
  Eigen::VectorXd psi(r + 1), b(r + 1), gamma(r + 1);
  for (int j = 0; j <= r; ++j) {
    double v = j < r ? theta(j) : 0.0;
    for (int i = 1; i <= std::min(j, p); ++i) v += phi(i - 1) * psi(j - i);
    psi(j) = v;
  }
  for (int k = 0; k <= r; ++k) {
    double v = 0;
    for (int j = k; j < r; ++j) v += theta(j) * psi(j - k);
    b(k) = v;
  }
  Eigen::MatrixXd a = Eigen::MatrixXd::Identity(p + 1, p + 1);
  for (int k = 0; k <= p; ++k) {
    for (int i = 1; i <= p; ++i) a(k, std::abs(k - i)) -= phi(i - 1);
  }
  Eigen::PartialPivLU<Eigen::MatrixXd> lu(a);
  gamma.head(p + 1) = lu.solve(b.head(p + 1));
  for (int k = p + 1; k <= r; ++k) {
    double v = b(k);
    for (int i = 1; i <= p; ++i) v += phi(i - 1) * gamma(k - i);
    gamma(k) = v;
  }
  if (!gamma.allFinite() || !(gamma(0) > 0)) return {};
  Eigen::VectorXd s(r);
  for (int i = 0; i < r; ++i) {
    double v = 0;
    for (int k = 0; i + 1 + k <= r; ++k) v += phi(i + k) * gamma(k + 1);
    for (int k = 0; i + k < r; ++k) v += theta(i + k) * psi(k);
    s(i) = v;
  }
  return s;
}

// Exact Gaussian likelihood by the Kalman filter from the stationary initial
// covariance, with the Riccati update in Chandrasekhar form (Morf, Sidhu and
// Kailath): P_{t+1} - P_t = -F_t w_t w_t' stays of rank one, so each step is
// O(r) instead of O(r^2):
//   F_{t+1} = F_t (1 - w0^2),  K_{t+1} = (K_t - w0 T w_t) / (1 - w0^2),
//   w_{t+1} = T w_t - K_{t+1} w0   (w0 = w_t(0); w_0 = K_0 = T P_0 Z' / F_0),
// where K is the predictive gain and a_{t+1} = T a_t + K_t v_t. Once w is
// negligible the gain is constant (steady state).
// With `std_resid` (size n), also the standardised innovations v_t / sqrt(F_t).
KalmanOut KalmanLoglik(std::span<const double> w, const Expanded& e, bool keep_state,
                       std::span<double> std_resid = {}) {
  KalmanOut out;
  const int p = static_cast<int>(e.ar.size()), q = static_cast<int>(e.ma.size());
  const int r = std::max(p, q + 1);
  Eigen::VectorXd phi = Eigen::VectorXd::Zero(r), theta = Eigen::VectorXd::Zero(r);
  for (int i = 0; i < p; ++i) phi(i) = e.ar[i];
  theta(0) = 1;
  for (int j = 0; j < q; ++j) theta(j + 1) = e.ma[j];
  const Eigen::VectorXd s = StationaryFirstColumn(phi, theta, p);
  if (s.size() == 0) return out;
  // (T x)_i = phi_i x_0 + x_{i+1}.
  auto apply_t = [&](const Eigen::VectorXd& x, Eigen::VectorXd& y) {
    for (int i = 0; i + 1 < r; ++i) y(i) = phi(i) * x(0) + x(i + 1);
    y(r - 1) = phi(r - 1) * x(0);
  };
  double f = s(0);
  Eigen::VectorXd gain(r), wv(r), tw(r), a = Eigen::VectorXd::Zero(r), ta(r);
  apply_t(s, gain);
  gain /= f;
  wv = gain;
  bool steady = false;
  const int n = static_cast<int>(w.size());
  double ssq = 0, sumlog = 0;
  for (int t = 0; t < n; ++t) {
    if (!(f > 0)) return out;
    const double v = (w[t] - e.mean) - a(0);
    ssq += v * v / f;
    sumlog += std::log(f);
    if (!std_resid.empty()) std_resid[t] = v / std::sqrt(f);
    apply_t(a, ta);
    a = ta + gain * v;
    if (steady) continue;
    const double w0 = wv(0), shrink = 1 - w0 * w0;
    apply_t(wv, tw);
    gain = (gain - w0 * tw) / shrink;
    wv = tw - w0 * gain;
    f *= shrink;
    steady = wv.squaredNorm() < 1e-20;
  }
  if (n <= 0 || !(ssq > 0)) return out;
  out.sigma2 = ssq / n;
  out.loglik = -0.5 * (n * std::log(2 * M_PI * out.sigma2) + sumlog + n);
  out.sumlog = sumlog;
  if (keep_state) {
    out.a.assign(a.data(), a.data() + r);
    out.gain.assign(gain.data(), gain.data() + r);
  }
  return out;
}

std::vector<double> DiffPoly(int d, int sd, int m) {
  // (1 - B)^d (1 - B^m)^D = 1 - sum delta_k B^k.
  std::vector<double> poly = {1.0};
  auto mult = [&](int lag) {
    std::vector<double> next(poly.size() + lag, 0.0);
    for (size_t i = 0; i < poly.size(); ++i) {
      next[i] += poly[i];
      next[i + lag] -= poly[i];
    }
    poly = next;
  };
  for (int i = 0; i < d; ++i) mult(1);
  for (int i = 0; i < sd; ++i) mult(m);
  std::vector<double> delta;
  for (size_t k = 1; k < poly.size(); ++k) delta.push_back(-poly[k]);
  return delta;
}

std::vector<double> Difference(std::span<const double> y, const std::vector<double>& delta) {
  const int l = static_cast<int>(delta.size());
  std::vector<double> w;
  for (size_t t = l; t < y.size(); ++t) {
    double v = y[t];
    for (int k = 0; k < l; ++k) v -= delta[k] * y[t - 1 - k];
    w.push_back(v);
  }
  return w;
}

double KpssStatistic(std::span<const double> x) {
  const int n = static_cast<int>(x.size());
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  std::vector<double> e(n);
  for (int i = 0; i < n; ++i) e[i] = x[i] - mean;
  double s = 0, eta = 0;
  for (int i = 0; i < n; ++i) {
    s += e[i];
    eta += s * s;
  }
  const int lags = static_cast<int>(std::trunc(4 * std::pow(n / 100.0, 0.25)));
  double s2 = 0;
  for (int i = 0; i < n; ++i) s2 += e[i] * e[i];
  s2 /= n;
  for (int j = 1; j <= lags; ++j) {
    double c = 0;
    for (int i = j; i < n; ++i) c += e[i] * e[i - j];
    s2 += 2 * (1 - j / (lags + 1.0)) * c / n;
  }
  return eta / (static_cast<double>(n) * n * s2);
}

// Seasonal strength max(0, 1 - var(R) / var(S + R)) as R's nsdiffs(test =
// "seas") measures it on an STL decomposition (mstl: seasonal window 11,
// seasonal loess of degree 0): the trend is a centred moving average and the
// seasonal component of each point a tricube-weighted mean of its own phase's
// detrended values in the nearest `kWindow` cycles, so that a cycle that
// changes shape over the history still counts as seasonal. (One fixed
// seasonal figure of a classical decomposition disagreed with R's STL test on
// 23 of the 414 M4 hourly series, this on 1: docs/forecasting.md.)
double SeasonalStrength(std::span<const double> x, int m) {
  constexpr int kWindow = 11;
  const int n = static_cast<int>(x.size());
  const std::vector<double> trend = CentredMovingAverage(x, m);
  std::vector<double> rem, sr, phase;
  for (int p = 0; p < m; ++p) {
    phase.clear();
    for (int t = p; t < n; t += m) {
      if (!std::isnan(trend[t])) phase.push_back(x[t] - trend[t]);
    }
    const int k = static_cast<int>(phase.size());
    for (int j = 0; j < k; ++j) {
      const int lo = std::max(0, std::min(j - kWindow / 2, k - kWindow));
      const int hi = std::min(k, lo + kWindow);
      const double h = std::max({j - lo, hi - 1 - j, 1});
      double sum = 0, weight = 0;
      for (int i = lo; i < hi; ++i) {
        const double u = std::abs(i - j) / (h * (1 + 1e-7));
        const double w = std::pow(1 - u * u * u, 3);
        sum += w * phase[i];
        weight += w;
      }
      rem.push_back(phase[j] - sum / weight);
      sr.push_back(phase[j]);
    }
  }
  auto var = [](const std::vector<double>& v) {
    const double mu = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    double s = 0;
    for (double x : v) s += (x - mu) * (x - mu);
    return s / std::max<size_t>(v.size() - 1, 1);
  };
  if (sr.size() < 3 || !(var(sr) > 0)) return 0;
  return std::max(0.0, 1 - var(rem) / var(sr));
}

struct Candidate {
  ArimaOrder order;
  std::vector<double> coef;  // Natural.
  double ic = kInf;
};

// Mean and standard deviation (divisor n) of the differenced series: the
// constant's start and scale, computed once per differencing.
struct Moments {
  double mean = 0;
  double sd = 0;
};

Moments MomentsOf(std::span<const double> w) {
  Moments m;
  for (double v : w) m.mean += v / w.size();
  double var = 0;
  for (double v : w) var += (v - m.mean) * (v - m.mean) / w.size();
  m.sd = std::sqrt(var);
  return m;
}

// Fits by CSS; `ic` is the CSS-based AICc (used by the stepwise search). The
// conditional residuals are a sum of squares in the free parameters (AR blocks
// in PACF space, so the search stays stationary), minimised by
// Levenberg-Marquardt from zero coefficients and the sample mean.
Candidate FitCss(std::span<const double> w, const Moments& wm, const ArimaOrder& o, int nstar) {
  Candidate c{o, {}, kInf};
  const int k = Layout{o}.size();
  const int n_used = nstar - (o.p + o.period * o.sp);
  if (n_used <= 0) return c;
  std::vector<double> x0(k, 0.0);
  LeastSquaresOptions lo;
  lo.scale.assign(k, 1.0);
  if (o.constant) {
    x0[k - 1] = wm.mean;
    lo.scale[k - 1] = wm.sd + 1e-8;
  }
  auto residuals = [&](std::span<const double> x, std::span<double> out) {
    const double ssq = CssResiduals(w, Expand(o, ToNatural(o, x)), out);
    return std::isfinite(ssq);
  };
  lo.max_iterations = 200;
  lo.ftol = 1e-10;
  lo.xtol = 1e-9;
  LeastSquaresResult r = MinimizeSumOfSquares(residuals, n_used, x0, lo);
  if (!(r.sum_squares > 0) || !std::isfinite(r.sum_squares)) return c;
  c.coef = ToNatural(o, r.x);
  if (!Invertible(o, c.coef, 1.01) || !Stationary(o, c.coef, 1.01)) return c;
  const double sigma2 = r.sum_squares / n_used;
  // As R: the per-observation CSS value scaled to all differenced observations.
  const double loglik = -0.5 * nstar * (std::log(2 * M_PI * sigma2) + 1);
  const double npar = k + 1;
  c.ic = -2 * loglik + 2 * npar + 2 * npar * (npar + 1) / (nstar - npar - 1);
  if (nstar - npar - 1 <= 0) c.ic = kInf;
  return c;
}

}  // namespace

std::string ArimaOrder::Name() const {
  std::string s = absl::StrCat("ARIMA(", p, ",", d, ",", q, ")");
  if (period > 1 && (sp + sd + sq) > 0) {
    absl::StrAppend(&s, "(", sp, ",", sd, ",", sq, ")[", period, "]");
  }
  if (constant) absl::StrAppend(&s, d + sd == 0 ? " with non-zero mean" : " with drift");
  return s;
}

void ArimaModel::Update(double y) {
  const int l = static_cast<int>(delta_.size());
  if (!std::isfinite(y)) {
    // Missing bucket: use the one-step forecast.
    double w = mean_ + a_[0];
    y = w;
    for (int k = 0; k < l; ++k) y += delta_[k] * recent_[l - 1 - k];
  }
  double w = y;
  for (int k = 0; k < l; ++k) w -= delta_[k] * recent_[l - 1 - k];
  const double v = (w - mean_) - a_[0];
  const int r = static_cast<int>(a_.size());
  const double a0 = a_[0];
  for (int j = 0; j < r; ++j) {
    a_[j] = (j < static_cast<int>(ar_.size()) ? ar_[j] : 0.0) * a0 + (j + 1 < r ? a_[j + 1] : 0.0) +
            gain_[j] * v;
  }
  if (l > 0) {
    recent_.erase(recent_.begin());
    recent_.push_back(y);
  }
  ++n_;
}

absl::StatusOr<Forecast> ArimaModel::Predict(int horizon, double level) const {
  if (horizon < 1) return absl::InvalidArgumentError("horizon must be >= 1");
  if (!(level > 0 && level < 100)) return absl::InvalidArgumentError("level must be in (0, 100)");
  Forecast f;
  f.level = level;
  const int r = static_cast<int>(a_.size());
  std::vector<double> a = a_, hist = recent_;
  const int l = static_cast<int>(delta_.size());
  for (int h = 0; h < horizon; ++h) {
    const double w = mean_ + a[0];
    double y = w;
    for (int k = 0; k < l; ++k) y += delta_[k] * hist[hist.size() - 1 - k];
    hist.push_back(y);
    f.mean.push_back(y);
    std::vector<double> next(r);
    for (int j = 0; j < r; ++j) {
      next[j] =
          (j < static_cast<int>(ar_.size()) ? ar_[j] : 0.0) * a[0] + (j + 1 < r ? a[j + 1] : 0.0);
    }
    a = next;
  }
  // psi weights of the integrated model: phi(B) delta(B) psi(B) = theta(B).
  std::vector<double> full(ar_.size() + delta_.size(), 0.0);  // 1 - sum full_i B^i
  {
    std::vector<double> phi_poly(ar_.size() + 1, 0.0), del_poly(delta_.size() + 1, 0.0);
    phi_poly[0] = del_poly[0] = 1;
    for (size_t i = 0; i < ar_.size(); ++i) phi_poly[i + 1] = -ar_[i];
    for (size_t i = 0; i < delta_.size(); ++i) del_poly[i + 1] = -delta_[i];
    std::vector<double> prod(phi_poly.size() + del_poly.size() - 1, 0.0);
    for (size_t i = 0; i < phi_poly.size(); ++i) {
      for (size_t j = 0; j < del_poly.size(); ++j) prod[i + j] += phi_poly[i] * del_poly[j];
    }
    for (size_t i = 1; i < prod.size(); ++i) full[i - 1] = -prod[i];
  }
  std::vector<double> psi(horizon, 0.0);
  psi[0] = 1;
  for (int j = 1; j < horizon; ++j) {
    double v = j - 1 < static_cast<int>(ma_.size()) ? ma_[j - 1] : 0.0;
    for (int i = 1; i <= j && i - 1 < static_cast<int>(full.size()); ++i)
      v += full[i - 1] * psi[j - i];
    psi[j] = v;
  }
  const double z = NormalQuantile(0.5 + level / 200.0);
  double acc = 0;
  for (int h = 0; h < horizon; ++h) {
    acc += psi[h] * psi[h];
    const double sd = std::sqrt(sigma2_ * acc);
    f.lower.push_back(f.mean[h] - z * sd);
    f.upper.push_back(f.mean[h] + z * sd);
  }
  return f;
}

std::vector<NamedValue> ArimaModel::Parameters() const {
  std::vector<NamedValue> out;
  int k = 0;
  for (int i = 0; i < order_.p; ++i) out.emplace_back(absl::StrCat("ar", i + 1), coef_[k++]);
  for (int i = 0; i < order_.q; ++i) out.emplace_back(absl::StrCat("ma", i + 1), coef_[k++]);
  for (int i = 0; i < order_.sp; ++i) out.emplace_back(absl::StrCat("sar", i + 1), coef_[k++]);
  for (int i = 0; i < order_.sq; ++i) out.emplace_back(absl::StrCat("sma", i + 1), coef_[k++]);
  if (order_.constant) {
    const int dd = order_.d + order_.sd;
    const double scale = order_.sd > 0 ? order_.period : 1.0;
    out.emplace_back(dd == 0 ? "mean" : "drift", dd == 0 ? mean_ : mean_ / scale);
  }
  out.emplace_back("sigma2", sigma2_);
  return out;
}

absl::StatusOr<std::unique_ptr<ArimaModel>> FitArima(std::span<const double> y,
                                                     const ArimaOrder& order_in, bool exact) {
  ArimaOrder o = order_in;
  if (o.period < 2) o.sp = o.sd = o.sq = 0, o.period = std::max(o.period, 1);
  if (o.d + o.sd > 1) o.constant = false;
  std::vector<double> delta = DiffPoly(o.d, o.sd, o.period);
  const int n = static_cast<int>(y.size());
  const int k = Layout{o}.size();
  std::vector<double> w = Difference(y, delta);
  const int nstar = static_cast<int>(w.size());
  if (nstar - static_cast<int>(o.p + o.period * o.sp) < k + 4) {
    return absl::FailedPreconditionError(absl::StrCat(o.Name(), ": series too short"));
  }
  const Moments wm = MomentsOf(w);
  Candidate css = FitCss(w, wm, o, nstar);
  if (css.coef.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(o.Name(), ": CSS fit failed"));
  }
  std::vector<double> coef = css.coef;
  const int r_dim = std::max(o.p + o.period * o.sp, o.q + o.period * o.sq + 1);
  if (exact && r_dim <= kMaxExactStates) {
    // Exact ML from the CSS estimates (AR blocks in PACF space).
    std::vector<double> x0 = coef;
    auto to_pacf = [](std::span<const double> ar, double* out) {
      std::vector<double> phi(ar.begin(), ar.end());
      for (int kk = static_cast<int>(phi.size()) - 1; kk >= 0; --kk) {
        const double r = std::clamp(phi[kk], -0.999, 0.999);
        out[kk] = std::atanh(r);
        std::vector<double> prev(kk);
        for (int j = 0; j < kk; ++j) prev[j] = (phi[j] + r * phi[kk - 1 - j]) / (1 - r * r);
        std::copy(prev.begin(), prev.end(), phi.begin());
      }
    };
    to_pacf(std::span<const double>(coef).subspan(0, o.p), x0.data());
    to_pacf(std::span<const double>(coef).subspan(o.p + o.q, o.sp), x0.data() + o.p + o.q);
    // -2 loglik = n log(sum v^2 / F) + sum log F + const = n log(sum (v g / sqrt(F))^2)
    // + const, g = exp(sum log F / 2n): a sum of squares, minimised by
    // Levenberg-Marquardt. Non-invertible MA parameters are infeasible.
    auto residuals = [&](std::span<const double> x, std::span<double> out) {
      std::vector<double> nat = ToNatural(o, x);
      if (!Invertible(o, nat, 1.0)) return false;
      KalmanOut ko = KalmanLoglik(w, Expand(o, nat), false, out);
      if (!std::isfinite(ko.loglik)) return false;
      const double g = std::exp(ko.sumlog / (2.0 * nstar));
      for (double& v : out) v *= g;
      return true;
    };
    LeastSquaresOptions lo;
    lo.scale.assign(k, 1.0);
    if (o.constant) lo.scale[k - 1] = wm.sd + 1e-8;
    lo.max_iterations = 100;
    lo.ftol = 1e-10;
    lo.xtol = 1e-9;
    LeastSquaresResult r = MinimizeSumOfSquares(residuals, nstar, x0, lo);
    // Optima on the invertibility boundary (a seasonal MA root at 1 is common)
    // are where Levenberg-Marquardt stops short: a Nelder-Mead search from its
    // solution moves along the boundary.
    auto objective = [&](std::span<const double> x) {
      std::vector<double> nat = ToNatural(o, x);
      if (!Invertible(o, nat, 1.0)) return 1e300;
      KalmanOut ko = KalmanLoglik(w, Expand(o, nat), false);
      return std::isfinite(ko.loglik) ? -ko.loglik : 1e300;
    };
    MinimizeOptions mo;
    mo.max_evaluations = 60 * (k + 1);
    std::vector<double> step(k, 0.02);
    if (o.constant) step[k - 1] = 0.05 * lo.scale[k - 1];
    mo.initial_step = step;
    mo.ftol_rel = 1e-10;
    MinimizeResult nm = Minimize(objective, std::isfinite(r.sum_squares) ? r.x : x0, mo);
    if (nm.value < 1e299) coef = ToNatural(o, nm.x);
  }
  Expanded e = Expand(o, coef);
  KalmanOut ko = KalmanLoglik(w, e, true);
  if (!std::isfinite(ko.loglik)) {
    return absl::InternalError(absl::StrCat(o.Name(), ": likelihood failed"));
  }
  auto model = std::make_unique<ArimaModel>();
  model->order_ = o;
  model->coef_ = coef;
  model->ar_ = e.ar;
  model->ma_ = e.ma;
  model->delta_ = delta;
  model->mean_ = e.mean;
  model->sigma2_ = ko.sigma2;
  model->loglik_ = ko.loglik;
  const double npar = k + 1;
  const double den = nstar - npar - 1;
  model->aicc_ = den > 0 ? -2 * ko.loglik + 2 * npar + 2 * npar * (npar + 1) / den : kInf;
  model->n_ = n;
  model->a_ = ko.a;
  model->gain_ = ko.gain;
  model->recent_.assign(y.end() - delta.size(), y.end());
  return model;
}

absl::StatusOr<std::unique_ptr<ArimaModel>> FitArimaAuto(std::span<const double> y,
                                                         const ArimaAutoOptions& options) {
  const int n = static_cast<int>(y.size());
  if (n < 10) return absl::FailedPreconditionError("ARIMA needs at least 10 observations");
  const bool constant_series = std::all_of(y.begin(), y.end(), [&](double v) { return v == y[0]; });
  if (constant_series) return FitArima(y, ArimaOrder{}, false);
  int m = options.period;
  if (m < 2 || n < 2 * m + 5) m = 1;
  // Seasonal differencing by seasonal strength, then KPSS for d.
  int sd = 0;
  if (m > 1 && options.max_sd > 0 && SeasonalStrength(y, m) > 0.64) sd = 1;
  std::vector<double> x = Difference(y, DiffPoly(0, sd, m));
  int d = 0;
  while (d < options.max_d && x.size() > 10 && KpssStatistic(x) > 0.463) {
    x = Difference(x, DiffPoly(1, 0, 1));
    ++d;
  }
  std::vector<double> w = Difference(y, DiffPoly(d, sd, m));
  const int nstar = static_cast<int>(w.size());
  const Moments wm = MomentsOf(w);
  std::map<std::tuple<int, int, int, int, bool>, Candidate> tried;
  auto fit = [&](int p, int q, int sp, int sq, bool c) -> double {
    if (p < 0 || q < 0 || sp < 0 || sq < 0 || p > options.max_p || q > options.max_q ||
        sp > options.max_sp || sq > options.max_sq) {
      return kInf;
    }
    if (m == 1 && (sp > 0 || sq > 0)) return kInf;
    if (d + sd > 1 && c) return kInf;
    auto key = std::make_tuple(p, q, sp, sq, c);
    auto it = tried.find(key);
    if (it != tried.end()) return it->second.ic;
    ArimaOrder o{p, d, q, sp, sd, sq, m, c};
    if (nstar - (p + m * sp) < Layout{o}.size() + 4) return tried[key].ic = kInf;
    Candidate cand = FitCss(w, wm, o, nstar);
    tried[key] = cand;
    return cand.ic;
  };
  const bool c0 = d + sd <= 1;
  const int s1 = m > 1 ? 1 : 0;
  std::tuple<int, int, int, int, bool> best{0, 0, 0, 0, c0};
  double best_ic = kInf;
  for (auto [p, q, sp, sq] : {std::tuple{2, 2, s1, s1}, std::tuple{0, 0, 0, 0},
                              std::tuple{1, 0, s1, 0}, std::tuple{0, 1, 0, s1}}) {
    const double ic = fit(p, q, sp, sq, c0);
    if (ic < best_ic) best_ic = ic, best = {p, q, sp, sq, c0};
  }
  if (c0) {
    const double ic = fit(0, 0, 0, 0, false);
    if (ic < best_ic) best_ic = ic, best = {0, 0, 0, 0, false};
  }
  for (int iter = 0; iter < 94; ++iter) {
    auto [p, q, sp, sq, c] = best;
    const std::tuple<int, int, int, int, bool> moves[] = {
        {p, q, sp - 1, sq, c}, {p, q, sp + 1, sq, c},     {p, q, sp, sq - 1, c},
        {p, q, sp, sq + 1, c}, {p, q, sp - 1, sq - 1, c}, {p, q, sp + 1, sq + 1, c},
        {p - 1, q, sp, sq, c}, {p + 1, q, sp, sq, c},     {p, q - 1, sp, sq, c},
        {p, q + 1, sp, sq, c}, {p - 1, q - 1, sp, sq, c}, {p + 1, q + 1, sp, sq, c},
        {p, q, sp, sq, !c}};
    bool improved = false;
    for (const auto& mv : moves) {
      const auto [mp, mq, msp, msq, mc] = mv;
      const double ic = fit(mp, mq, msp, msq, mc);
      if (ic < best_ic) {
        best_ic = ic;
        best = mv;
        improved = true;
        break;
      }
    }
    if (!improved) break;
  }
  // Refit the best candidates exactly; fall back down the ranking if one fails.
  std::vector<std::pair<double, std::tuple<int, int, int, int, bool>>> ranked;
  for (const auto& [key, cand] : tried) {
    if (std::isfinite(cand.ic)) ranked.emplace_back(cand.ic, key);
  }
  std::sort(ranked.begin(), ranked.end());
  if (ranked.empty()) ranked.emplace_back(0.0, std::make_tuple(0, 0, 0, 0, c0));
  // The CSS ranking is approximate: refit the best few by exact ML and keep the
  // smallest exact AICc.
  absl::Status last = absl::InternalError("ARIMA: no model could be fitted");
  std::unique_ptr<ArimaModel> best_model;
  int refitted = 0;
  for (size_t i = 0; i < ranked.size() && refitted < options.exact_refits; ++i) {
    const auto [p, q, sp, sq, c] = ranked[i].second;
    auto model = FitArima(y, ArimaOrder{p, d, q, sp, sd, sq, m, c}, /*exact=*/true);
    if (!model.ok()) {
      last = model.status();
      continue;
    }
    ++refitted;
    if (best_model == nullptr || (*model)->Aicc() < best_model->Aicc()) {
      best_model = std::move(*model);
    }
  }
  if (best_model == nullptr) return last;
  return best_model;
}

}  // namespace ppe::forecast
