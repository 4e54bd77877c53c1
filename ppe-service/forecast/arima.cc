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
#include "ppe-service/forecast/optimizer.h"
#include "ppe-service/forecast/stats.h"

namespace ppe::forecast {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Above this state dimension the exact-likelihood optimisation is skipped (the
// CSS estimates are kept and the exact likelihood is evaluated once).
constexpr int kMaxExactStates = 30;

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

// True if all roots of 1 + c1 z + ... + ck z^k lie outside the circle of radius `radius`.
bool RootsOutside(std::span<const double> c, double radius) {
  int k = static_cast<int>(c.size());
  while (k > 0 && c[k - 1] == 0) --k;
  if (k == 0) return true;
  // Reversed, scaled polynomial z^k + c1 r z^(k-1)... must have roots inside the unit disc.
  std::vector<double> poly(k + 1);  // Increasing powers.
  poly[k] = 1;
  double scale = 1;
  for (int j = 1; j <= k; ++j) {
    scale /= radius;
    poly[k - j] = c[j - 1] * scale;
  }
  int d = k;
  while (d > 0) {
    const double lead = poly[d], tail = poly[0];
    if (std::fabs(tail) >= std::fabs(lead)) return false;
    std::vector<double> next(d);
    for (int i = 0; i < d; ++i) next[i] = (lead * poly[i + 1] - tail * poly[d - 1 - i]) / lead;
    poly.swap(next);
    --d;
  }
  return true;
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

// Conditional sum of squares: returns 0.5 log(sigma2) (R's CSS objective) and n used.
double CssObjective(std::span<const double> w, const Expanded& e, int* n_used,
                    std::vector<double>& resid) {
  const int n = static_cast<int>(w.size());
  const int ncond = static_cast<int>(e.ar.size());
  std::vector<std::pair<int, double>> ar, ma;
  for (size_t i = 0; i < e.ar.size(); ++i) {
    if (e.ar[i] != 0) ar.emplace_back(static_cast<int>(i) + 1, e.ar[i]);
  }
  for (size_t j = 0; j < e.ma.size(); ++j) {
    if (e.ma[j] != 0) ma.emplace_back(static_cast<int>(j) + 1, e.ma[j]);
  }
  resid.assign(n, 0.0);
  double ssq = 0;
  for (int t = ncond; t < n; ++t) {
    double v = w[t] - e.mean;
    for (const auto& [lag, a] : ar) v -= a * (w[t - lag] - e.mean);
    for (const auto& [lag, b] : ma) {
      if (t - lag >= ncond) v -= b * resid[t - lag];
    }
    resid[t] = v;
    ssq += v * v;
  }
  *n_used = n - ncond;
  if (*n_used <= 0 || !(ssq > 0)) return kInf;
  return 0.5 * std::log(ssq / *n_used);
}

// Kalman filter for the ARMA part in Harvey's state-space form.
struct KalmanOut {
  double loglik = -kInf;
  double sigma2 = 0;
  std::vector<double> a;     // Predicted state for the next observation.
  std::vector<double> gain;  // T P Z' / F at the end (steady state).
};

// Stationary state covariance P = T P T' + R R' by doubling.
Eigen::MatrixXd StationaryCovariance(const Eigen::MatrixXd& t, const Eigen::VectorXd& r) {
  Eigen::MatrixXd p = r * r.transpose();
  Eigen::MatrixXd a = t;
  for (int k = 0; k < 60; ++k) {
    Eigen::MatrixXd next = p + a * p * a.transpose();
    const double change = (next - p).cwiseAbs().maxCoeff();
    p = std::move(next);
    a = a * a;
    if (change <= 1e-12 * p.cwiseAbs().maxCoeff() || a.cwiseAbs().maxCoeff() < 1e-14) break;
  }
  return p;
}

KalmanOut KalmanLoglik(std::span<const double> w, const Expanded& e, bool keep_state) {
  KalmanOut out;
  const int p = static_cast<int>(e.ar.size()), q = static_cast<int>(e.ma.size());
  const int r = std::max(p, q + 1);
  Eigen::VectorXd phi = Eigen::VectorXd::Zero(r), rv = Eigen::VectorXd::Zero(r);
  for (int i = 0; i < p; ++i) phi(i) = e.ar[i];
  rv(0) = 1;
  for (int j = 0; j < q; ++j) rv(j + 1) = e.ma[j];
  Eigen::MatrixXd t = Eigen::MatrixXd::Zero(r, r);
  t.col(0) = phi;
  for (int i = 0; i + 1 < r; ++i) t(i, i + 1) = 1;
  const Eigen::MatrixXd p_init = StationaryCovariance(t, rv);
  if (!p_init.allFinite()) return out;
  // P with a row and a column of zeros appended (so that the structured
  // update below needs no bounds tests); only its upper triangle is kept
  // current, and P's first column is read as its first row.
  Eigen::MatrixXd pm = Eigen::MatrixXd::Zero(r + 1, r + 1);
  pm.topLeftCorner(r, r) = p_init;
  Eigen::MatrixXd rr = rv * rv.transpose();
  Eigen::VectorXd a = Eigen::VectorXd::Zero(r), k(r);
  const int n = static_cast<int>(w.size());
  double ssq = 0, sumlog = 0, f = 0, f_prev = -1;
  bool steady = false;
  Eigen::VectorXd p0 = Eigen::VectorXd::Zero(r + 1), kp = Eigen::VectorXd::Zero(r + 1), q_row0(r);
  for (int i = 0; i < n; ++i) {
    const double v = (w[i] - e.mean) - a(0);
    if (!steady) {
      f = pm(0, 0);
      if (!(f > 0)) return out;
      k = pm.row(0).head(r).transpose() / f;
    }
    ssq += v * v / f;
    sumlog += std::log(f);
    // a <- T (a + k v); structured product: (T x)_i = phi_i x_0 + x_{i+1}.
    Eigen::VectorXd x = a + k * v;
    for (int j = 0; j < r; ++j) a(j) = phi(j) * x(0) + (j + 1 < r ? x(j + 1) : 0.0);
    if (!steady) {
      // P <- T Q T' + R R' with Q = P - k p0' (p0: P's first row, k = p0 / F),
      // in one in-place pass over the upper triangle using T's structure,
      // (T x)_i = phi_i x_0 + x_{i+1}:
      //   P'(i, j) = phi_i (phi_j Q(0, 0) + Q(0, j+1)) + phi_j Q(i+1, 0) + Q(i+1, j+1)
      //              + (R R')(i, j).
      // Column j is written after reading column j + 1, which is still P's.
      p0.head(r) = pm.row(0).head(r).transpose();
      kp.head(r) = k;
      const double q00 = p0(0) * (1 - kp(0));
      for (int row = 0; row < r; ++row) q_row0(row) = p0(row + 1) - kp(row + 1) * p0(0);
      for (int col = 0; col < r; ++col) {
        const double pc = phi(col), q0c = p0(col + 1) * (1 - kp(0)), p0c = p0(col + 1);
        const double head = pc * q00 + q0c;
        double* out_col = &pm(0, col);
        const double* next_col = &pm(1, col + 1);
        for (int row = 0; row <= col; ++row) {
          out_col[row] =
              phi(row) * head + pc * q_row0(row) + next_col[row] - kp(row + 1) * p0c + rr(row, col);
        }
      }
      if (std::fabs(f - f_prev) < 1e-12 * f) {
        steady = true;
        f = pm(0, 0);
        k = pm.row(0).head(r).transpose() / f;
      }
      f_prev = f;
    }
  }
  if (n <= 0 || !(ssq > 0)) return out;
  out.sigma2 = ssq / n;
  out.loglik = -0.5 * (n * std::log(2 * M_PI * out.sigma2) + sumlog + n);
  if (keep_state) {
    out.a.assign(a.data(), a.data() + r);
    // Predicted-form gain for O(r) updates: a_next = T (a + k v).
    Eigen::VectorXd kk = steady ? k : Eigen::VectorXd(pm.row(0).head(r).transpose() / pm(0, 0));
    out.gain.assign(kk.data(), kk.data() + r);
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

// Seasonal strength max(0, 1 - var(R) / var(S + R)) of a classical decomposition.
double SeasonalStrength(std::span<const double> x, int m) {
  const int n = static_cast<int>(x.size());
  std::vector<double> trend = CentredMovingAverage(x, m);
  auto fig = DecomposeSeasonal(x, {m}, 1.0)[0];
  std::vector<double> rem, sr;
  for (int t = 0; t < n; ++t) {
    if (std::isnan(trend[t])) continue;
    const double detr = x[t] - trend[t];
    rem.push_back(detr - fig[t % m]);
    sr.push_back(detr);
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

// Fits by CSS; `ic` is the CSS-based AICc (used by the stepwise search).
Candidate FitCss(std::span<const double> w, const ArimaOrder& o, int nstar) {
  Candidate c{o, {}, kInf};
  const int k = Layout{o}.size();
  double mean = 0, var = 0;
  for (double v : w) mean += v / w.size();
  for (double v : w) var += (v - mean) * (v - mean) / w.size();
  std::vector<double> x0(k, 0.0), step(k, 0.1);
  if (o.constant) {
    x0[k - 1] = mean;
    step[k - 1] = 0.1 * std::sqrt(var) + 1e-8;
  }
  std::vector<double> resid;
  int n_used = 0;
  auto objective = [&](std::span<const double> x) {
    std::vector<double> nat = ToNatural(o, x);
    return CssObjective(w, Expand(o, nat), &n_used, resid);
  };
  MinimizeOptions mo;
  mo.max_evaluations = 200 * (k + 1);
  mo.initial_step = step;
  mo.ftol_rel = 1e-9;
  mo.xtol_rel = 1e-7;
  MinimizeResult r = Minimize(objective, x0, mo);
  if (!std::isfinite(r.value) || r.value > 1e299) return c;
  c.coef = ToNatural(o, r.x);
  if (!Invertible(o, c.coef, 1.01) || !Stationary(o, c.coef, 1.01)) return c;
  CssObjective(w, Expand(o, c.coef), &n_used, resid);
  const double sigma2 = std::exp(2 * r.value);
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
  std::vector<double> x(r);
  for (int j = 0; j < r; ++j) x[j] = a_[j] + gain_[j] * v;
  for (int j = 0; j < r; ++j) {
    a_[j] = (j < static_cast<int>(ar_.size()) ? ar_[j] : 0.0) * x[0] + (j + 1 < r ? x[j + 1] : 0.0);
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
  Candidate css = FitCss(w, o, nstar);
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
    auto objective = [&](std::span<const double> x) {
      std::vector<double> nat = ToNatural(o, x);
      if (!Invertible(o, nat, 1.0)) return 1e300;
      KalmanOut ko = KalmanLoglik(w, Expand(o, nat), false);
      return std::isfinite(ko.loglik) ? -ko.loglik : 1e300;
    };
    MinimizeOptions mo;
    mo.max_evaluations = 60 * (k + 1);
    std::vector<double> step(k, 0.02);
    if (o.constant) {
      double sd = 0, mu = 0;
      for (double v : w) mu += v / nstar;
      for (double v : w) sd += (v - mu) * (v - mu) / nstar;
      step[k - 1] = 0.05 * std::sqrt(sd) + 1e-8;
    }
    mo.initial_step = step;
    mo.ftol_rel = 1e-10;
    MinimizeResult r = Minimize(objective, x0, mo);
    if (r.value < 1e299) coef = ToNatural(o, r.x);
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
    Candidate cand = FitCss(w, o, nstar);
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
  for (size_t i = 0; i < std::min<size_t>(ranked.size(), options.exact_refits); ++i) {
    const auto [p, q, sp, sq, c] = ranked[i].second;
    auto model = FitArima(y, ArimaOrder{p, d, q, sp, sd, sq, m, c}, /*exact=*/true);
    if (!model.ok()) {
      last = model.status();
      continue;
    }
    if (best_model == nullptr || (*model)->Aicc() < best_model->Aicc()) {
      best_model = std::move(*model);
    }
  }
  if (best_model == nullptr) return last;
  return best_model;
}

}  // namespace ppe::forecast
