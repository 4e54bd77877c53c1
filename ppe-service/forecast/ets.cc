#include "ppe-service/forecast/ets.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/forecast/least_squares.h"
#include "ppe-service/forecast/optimizer.h"
#include "ppe-service/forecast/stats.h"

namespace ppe::forecast {
namespace {

constexpr double kTol = 1e-10;
constexpr double kHuge = 1e10;
// R's default bounds for alpha, beta, gamma, phi.
constexpr double kLower[4] = {1e-4, 1e-4, 1e-4, 0.8};
constexpr double kUpper[4] = {0.9999, 0.9999, 0.9999, 0.98};

bool HasTrend(const EtsSpec& s) { return s.trend != Component::kNone; }
bool HasSeason(const EtsSpec& s) { return s.season != Component::kNone; }
int Period(const EtsSpec& s) { return HasSeason(s) ? s.period : 1; }

// One-step forecast from level l, trend b and the seasonal index used next.
inline double OneStep(const EtsSpec& spec, double phi, double l, double b, double s) {
  double q = HasTrend(spec) ? l + phi * b : l;
  if (spec.season == Component::kAdditive) return q + s;
  if (spec.season == Component::kMultiplicative) return q * s;
  return q;
}

// One observation of the recursion with the components fixed at compile
// time: returns the one-step forecast made from (l, b, s), then updates them
// with y in R's Holt-Winters form (identical for A and M errors). beta_ratio
// is beta / alpha; s is ignored without a season.
template <bool kTrend, Component kSeason>
inline double StepT(double alpha, double beta_ratio, double gamma, double phi, double y, double& l,
                    double& b, double& s) {
  const double phib = kTrend ? phi * b : 0.0;
  const double q = l + phib;
  double f = q, pv = y;
  if constexpr (kSeason == Component::kAdditive) {
    f = q + s;
    pv = y - s;
  }
  if constexpr (kSeason == Component::kMultiplicative) {
    f = q * s;
    pv = std::fabs(s) < kTol ? kHuge : y / s;
  }
  const double old_l = l;
  l = q + alpha * (pv - q);
  if constexpr (kTrend) b = phib + beta_ratio * ((l - old_l) - phib);
  if constexpr (kSeason == Component::kAdditive) s = s + gamma * ((y - q) - s);
  if constexpr (kSeason == Component::kMultiplicative) {
    const double t = std::fabs(q) < kTol ? kHuge : y / q;
    s = s + gamma * (t - s);
  }
  return f;
}

template <bool kTrend>
inline void StepBySeason(const EtsSpec& spec, const EtsParameters& p, double y, double& l,
                         double& b, double& s) {
  const double beta_ratio = kTrend ? p.beta / p.alpha : 0.0;
  switch (spec.season) {
    case Component::kNone:
      StepT<kTrend, Component::kNone>(p.alpha, beta_ratio, p.gamma, p.phi, y, l, b, s);
      return;
    case Component::kAdditive:
      StepT<kTrend, Component::kAdditive>(p.alpha, beta_ratio, p.gamma, p.phi, y, l, b, s);
      return;
    case Component::kMultiplicative:
      StepT<kTrend, Component::kMultiplicative>(p.alpha, beta_ratio, p.gamma, p.phi, y, l, b, s);
      return;
  }
}

// State update with the components chosen at run time (filtering, Update,
// simulation); the fits run StepT directly.
inline void Step(const EtsSpec& spec, const EtsParameters& p, double y, double& l, double& b,
                 double* s_slot) {
  double none = 0;
  double& s = s_slot != nullptr ? *s_slot : none;
  if (HasTrend(spec)) {
    StepBySeason<true>(spec, p, y, l, b, s);
  } else {
    StepBySeason<false>(spec, p, y, l, b, s);
  }
}

// Loads an R-layout state into (l, b, ring, pos = 0).
void LoadState(const EtsSpec& spec, std::span<const double> x, double& l, double& b,
               std::vector<double>& ring) {
  l = x[0];
  b = HasTrend(spec) ? x[1] : 0.0;
  const int off = HasTrend(spec) ? 2 : 1;
  const int m = Period(spec);
  ring.assign(HasSeason(spec) ? m : 0, 0.0);
  // ring[i] is used i steps from now; R's s[m-1] is used next.
  for (int i = 0; i < static_cast<int>(ring.size()); ++i) ring[i] = x[off + m - 1 - i];
}

std::vector<double> StoreState(const EtsSpec& spec, double l, double b,
                               const std::vector<double>& ring, int pos) {
  std::vector<double> x;
  x.reserve(spec.NumStates());
  x.push_back(l);
  if (HasTrend(spec)) x.push_back(b);
  const int m = static_cast<int>(ring.size());
  for (int j = 0; j < m; ++j) x.push_back(ring[(pos + m - 1 - j) % m]);
  return x;
}

bool CheckParams(const EtsSpec& spec, const EtsParameters& p) {
  if (p.alpha < kLower[0] || p.alpha > kUpper[0]) return false;
  if (HasTrend(spec) && (p.beta < kLower[1] || p.beta > p.alpha || p.beta > kUpper[1])) {
    return false;
  }
  if (spec.damped && (p.phi < kLower[3] || p.phi > kUpper[3])) return false;
  if (HasSeason(spec) && (p.gamma < kLower[2] || p.gamma > 1 - p.alpha || p.gamma > kUpper[2])) {
    return false;
  }
  return EtsAdmissible(spec, p);
}

// Classical decomposition (as R's decompose): the seasonal figure, length m.
std::vector<double> SeasonalFigure(std::span<const double> y, int m, bool multiplicative) {
  const int n = static_cast<int>(y.size());
  std::vector<double> w;
  if (m % 2 == 0) {
    w.assign(m + 1, 1.0 / m);
    w.front() = w.back() = 0.5 / m;
  } else {
    w.assign(m, 1.0 / m);
  }
  const int half = static_cast<int>(w.size()) / 2;
  std::vector<double> sum(m, 0.0);
  std::vector<int> count(m, 0);
  for (int t = half; t + half < n; ++t) {
    double trend = 0;
    for (int k = 0; k < static_cast<int>(w.size()); ++k) trend += w[k] * y[t - half + k];
    const double d = multiplicative ? y[t] / trend : y[t] - trend;
    sum[t % m] += d;
    ++count[t % m];
  }
  std::vector<double> figure(m);
  double mean = 0;
  for (int i = 0; i < m; ++i) {
    figure[i] = count[i] > 0 ? sum[i] / count[i] : (multiplicative ? 1.0 : 0.0);
    mean += figure[i] / m;
  }
  for (double& f : figure) f = multiplicative ? f / mean : f - mean;
  return figure;
}

// Schur-Cohn test: all roots of sum c[k] z^k (c.back() != 0) satisfy
// |z| <= 1 (up to rounding). O(d^2), replaces an eigenvalue computation.
bool AllRootsInUnitDisc(std::vector<double> c) {
  int d = static_cast<int>(c.size()) - 1;
  while (d > 0) {
    const double lead = c[d], tail = c[0];
    if (std::fabs(tail) >= std::fabs(lead) * (1 + 1e-10)) return false;
    if (std::fabs(tail) > std::fabs(lead) * (1 - 1e-12)) {
      // On the boundary: R accepts roots with |z| <= 1 + 1e-10.
      return true;
    }
    std::vector<double> next(d);
    for (int k = 0; k < d; ++k) next[k] = (lead * c[k + 1] - tail * c[d - 1 - k]) / lead;
    c.swap(next);
    --d;
  }
  return true;
}

// One pass over `y` writing the residuals whose sum of squares is a monotone
// transform of R's likelihood: lik = n log(sum r^2). Additive error: r = e.
// Multiplicative error: lik = n log(sum e^2) + 2 sum log|f| = n log(sum (e g)^2)
// with g the geometric mean of |f|, so r = e g. Maximum likelihood is thus a
// least-squares problem. Compile-time components keep the loop branch-free,
// and L parameter sets (lanes, e.g. a Jacobian's columns) run side by side:
// the recursion is a chain of dependent operations, so independent lanes
// fill the pipeline. A lane whose multiplicative one-step forecast vanishes
// is not ok.
struct EtsLane {
  const EtsParameters* params;
  const double* x0;  // R layout, spec.NumStates() values.
  double* r;         // n residuals.
  bool ok = true;
};

template <Component kError, bool kTrend, Component kSeason, int L>
void EtsResidualsT(EtsLane* lanes, int m, std::span<const double> y, std::vector<double>& ring) {
  constexpr bool kHasSeason = kSeason != Component::kNone;
  constexpr int off = kTrend ? 2 : 1;
  double l[L], b[L], alpha[L], phi[L], gamma[L], beta_ratio[L];
  // sum log|f| as the log of a running product, flushed before it can
  // overflow or underflow: one log call per many steps instead of one per step.
  double log_f[L], prod_f[L];
  bool bad[L];
  ring.resize(static_cast<size_t>(m) * L);
  for (int k = 0; k < L; ++k) {
    const EtsParameters& p = *lanes[k].params;
    l[k] = lanes[k].x0[0];
    b[k] = kTrend ? lanes[k].x0[1] : 0.0;
    for (int i = 0; i < m; ++i) ring[i * L + k] = lanes[k].x0[off + m - 1 - i];
    alpha[k] = p.alpha;
    phi[k] = p.phi;
    gamma[k] = p.gamma;
    beta_ratio[k] = kTrend ? p.beta / p.alpha : 0.0;
    log_f[k] = 0;
    prod_f[k] = 1;
    bad[k] = false;
  }
  const int n = static_cast<int>(y.size());
  int pos = 0;
  double no_season = 0;
  for (int i = 0; i < n; ++i) {
    const double yi = y[i];
    double* slot = kHasSeason ? &ring[pos * L] : nullptr;
    for (int k = 0; k < L; ++k) {
      const double f = StepT<kTrend, kSeason>(alpha[k], beta_ratio[k], gamma[k], phi[k], yi, l[k],
                                              b[k], kHasSeason ? slot[k] : no_season);
      if constexpr (kError == Component::kMultiplicative) {
        bad[k] = bad[k] || std::fabs(f) < kTol;
        lanes[k].r[i] = (yi - f) / f;
        prod_f[k] *= std::fabs(f);
        if (!(prod_f[k] < 1e150 && prod_f[k] > 1e-150)) {
          log_f[k] += std::log(prod_f[k]);
          prod_f[k] = 1;
        }
      } else {
        lanes[k].r[i] = yi - f;
      }
    }
    if constexpr (kHasSeason) {
      if (++pos == m) pos = 0;
    }
  }
  for (int k = 0; k < L; ++k) {
    lanes[k].ok = !bad[k];
    if constexpr (kError == Component::kMultiplicative) {
      log_f[k] += std::log(prod_f[k]);
      lanes[k].ok = lanes[k].ok && std::isfinite(log_f[k]);
      const double g = std::exp(log_f[k] / n);
      for (int i = 0; i < n; ++i) lanes[k].r[i] *= g;
    }
  }
}

template <Component kError, bool kTrend, Component kSeason>
void EtsResidualsLanes(std::span<EtsLane> lanes, int m, std::span<const double> y,
                       std::vector<double>& ring) {
  constexpr int kLanes = 4;
  size_t i = 0;
  for (; i + kLanes <= lanes.size(); i += kLanes) {
    EtsResidualsT<kError, kTrend, kSeason, kLanes>(&lanes[i], m, y, ring);
  }
  for (; i < lanes.size(); ++i) EtsResidualsT<kError, kTrend, kSeason, 1>(&lanes[i], m, y, ring);
}

template <Component kError, bool kTrend>
void EtsResidualsBySeason(const EtsSpec& spec, std::span<EtsLane> lanes, std::span<const double> y,
                          std::vector<double>& ring) {
  const int m = HasSeason(spec) ? spec.period : 0;
  switch (spec.season) {
    case Component::kNone:
      return EtsResidualsLanes<kError, kTrend, Component::kNone>(lanes, m, y, ring);
    case Component::kAdditive:
      return EtsResidualsLanes<kError, kTrend, Component::kAdditive>(lanes, m, y, ring);
    case Component::kMultiplicative:
      return EtsResidualsLanes<kError, kTrend, Component::kMultiplicative>(lanes, m, y, ring);
  }
}

// Residuals for each lane (same specification, own parameters and state).
void EtsResiduals(const EtsSpec& spec, std::span<EtsLane> lanes, std::span<const double> y,
                  std::vector<double>& ring) {
  const bool mult = spec.error == Component::kMultiplicative;
  if (HasTrend(spec)) {
    return mult ? EtsResidualsBySeason<Component::kMultiplicative, true>(spec, lanes, y, ring)
                : EtsResidualsBySeason<Component::kAdditive, true>(spec, lanes, y, ring);
  }
  return mult ? EtsResidualsBySeason<Component::kMultiplicative, false>(spec, lanes, y, ring)
              : EtsResidualsBySeason<Component::kAdditive, false>(spec, lanes, y, ring);
}

}  // namespace

std::string EtsSpec::Name() const {
  return absl::StrCat("ETS(", std::string(1, static_cast<char>(error)), ",",
                      std::string(1, static_cast<char>(trend)), damped ? "d" : "", ",",
                      std::string(1, static_cast<char>(season)), ")",
                      HasSeason(*this) ? absl::StrCat("[", period, "]") : "");
}

absl::StatusOr<EtsSpec> EtsSpec::Parse(absl::string_view code, int period) {
  std::string c;
  for (char ch : code) {
    if (ch != ',' && ch != ' ') c.push_back(static_cast<char>(std::toupper(ch)));
  }
  EtsSpec spec;
  spec.period = period;
  auto comp = [](char ch, Component* out) {
    if (ch == 'N')
      *out = Component::kNone;
    else if (ch == 'A')
      *out = Component::kAdditive;
    else if (ch == 'M')
      *out = Component::kMultiplicative;
    else
      return false;
    return true;
  };
  bool ok = c.size() == 3 || (c.size() == 4 && c[2] == 'D');
  if (ok) {
    ok = comp(c[0], &spec.error) && comp(c[1], &spec.trend) && comp(c.back(), &spec.season);
    spec.damped = c.size() == 4;
  }
  if (!ok || spec.error == Component::kNone || spec.trend == Component::kMultiplicative ||
      (spec.damped && spec.trend == Component::kNone)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad ETS code '", std::string(code), "' (expected e.g. ANN, AAdN, MAM)"));
  }
  if (HasSeason(spec) && period < 2) {
    return absl::InvalidArgumentError("a seasonal ETS model needs a period >= 2");
  }
  return spec;
}

int EtsSpec::NumStates() const {
  return 1 + (HasTrend(*this) ? 1 : 0) + (HasSeason(*this) ? period : 0);
}

bool EtsAdmissible(const EtsSpec& spec, const EtsParameters& p) {
  const double phi = spec.damped ? p.phi : 1.0;
  const double alpha = p.alpha;
  if (phi < 0 || phi > 1 + 1e-8) return false;
  if (!HasSeason(spec)) {
    if (alpha < 1 - 1 / phi || alpha > 1 + 1 / phi) return false;
    if (HasTrend(spec) && (p.beta < alpha * (phi - 1) || p.beta > (1 + phi) * (2 - alpha))) {
      return false;
    }
    return true;
  }
  const int m = spec.period;
  if (m <= 1) return true;
  const double beta = HasTrend(spec) ? p.beta : 0.0;
  const double gamma = p.gamma;
  if (gamma < std::max(1 - 1 / phi - alpha, 0.0) || gamma > 1 + 1 / phi - alpha) return false;
  if (alpha < 1 - 1 / phi - gamma * (1 - m + phi + phi * m) / (2 * phi * m)) return false;
  if (beta < -(1 - phi) * (gamma / m + alpha)) return false;
  // Characteristic polynomial, increasing powers, degree m + 1, monic.
  std::vector<double> c(m + 2);
  c[0] = phi * (1 - alpha - gamma);
  c[1] = alpha + beta - alpha * phi + gamma - 1;
  for (int i = 2; i < m; ++i) c[i] = alpha + beta - alpha * phi;
  c[m] = alpha + beta - phi;
  c[m + 1] = 1;
  return AllRootsInUnitDisc(c);
}

absl::StatusOr<EtsFilterResult> EtsFilter(const EtsSpec& spec, const EtsParameters& params,
                                          std::span<const double> initial_state,
                                          std::span<const double> y, bool keep_states) {
  if (static_cast<int>(initial_state.size()) != spec.NumStates()) {
    return absl::InvalidArgumentError(absl::StrCat("initial state has ", initial_state.size(),
                                                   " values, expected ", spec.NumStates()));
  }
  EtsFilterResult out;
  double l, b;
  std::vector<double> ring;
  LoadState(spec, initial_state, l, b, ring);
  const int m = static_cast<int>(ring.size());
  int pos = 0;
  const int n = static_cast<int>(y.size());
  out.residuals.resize(n);
  out.fitted.resize(n);
  if (keep_states)
    out.states.push_back(std::vector<double>(initial_state.begin(), initial_state.end()));
  double sse = 0, lik2 = 0;
  const bool mult = spec.error == Component::kMultiplicative;
  for (int i = 0; i < n; ++i) {
    double* slot = m > 0 ? &ring[pos] : nullptr;
    const double f = OneStep(spec, params.phi, l, b, slot != nullptr ? *slot : 0.0);
    out.fitted[i] = f;
    double e;
    if (mult) {
      if (std::fabs(f) < kTol) {
        out.lik = std::numeric_limits<double>::infinity();
        return out;
      }
      e = (y[i] - f) / f;
      lik2 += std::log(std::fabs(f));
    } else {
      e = y[i] - f;
    }
    out.residuals[i] = e;
    sse += e * e;
    Step(spec, params, y[i], l, b, slot);
    if (m > 0 && ++pos == m) pos = 0;
    if (keep_states) out.states.push_back(StoreState(spec, l, b, ring, pos));
  }
  out.lik = n * std::log(sse) + (mult ? 2 * lik2 : 0.0);
  if (std::isnan(out.lik)) out.lik = std::numeric_limits<double>::infinity();
  out.final_state = StoreState(spec, l, b, ring, pos);
  return out;
}

std::vector<double> EtsHeuristicState(std::span<const double> y, const EtsSpec& spec) {
  const int n = static_cast<int>(y.size());
  std::vector<double> state;
  std::vector<double> y_sa(y.begin(), y.end());
  std::vector<double> init_seas;
  const bool mult_season = spec.season == Component::kMultiplicative;
  if (HasSeason(spec) && n >= 4) {
    const int m = spec.period;
    std::vector<double> seasonal(n);
    if (n < 3 * m) {
      // Regression on 1, t, sin, cos (first Fourier pair); seasonal = detrended data.
      const bool with_sin = m > 2;
      const int k = with_sin ? 4 : 3;
      Eigen::MatrixXd x(n, k);
      Eigen::VectorXd yy(n);
      for (int t = 0; t < n; ++t) {
        const double tt = t + 1;
        x(t, 0) = 1;
        x(t, 1) = tt;
        int c = 2;
        if (with_sin) x(t, c++) = std::sin(2 * M_PI * tt / m);
        x(t, c) = std::cos(2 * M_PI * tt / m);
        yy(t) = y[t];
      }
      Eigen::VectorXd beta = x.colPivHouseholderQr().solve(yy);
      for (int t = 0; t < n; ++t) {
        const double tr = beta(0) + beta(1) * (t + 1);
        seasonal[t] = mult_season ? y[t] / tr : y[t] - tr;
      }
    } else {
      std::vector<double> figure = SeasonalFigure(y, m, mult_season);
      for (int t = 0; t < n; ++t) seasonal[t] = figure[t % m];
    }
    for (int j = 0; j < m - 1; ++j) init_seas.push_back(seasonal[m - 1 - j]);
    if (mult_season) {
      double sum = 0;
      for (double& s : init_seas) {
        s = std::max(s, 0.01);
        sum += s;
      }
      if (sum > m) {
        const double denom = sum + 0.01 * init_seas.size();
        for (double& s : init_seas) s /= denom;
      }
      for (int t = 0; t < n; ++t) y_sa[t] = y[t] / std::max(seasonal[t], 0.01);
    } else {
      for (int t = 0; t < n; ++t) y_sa[t] = y[t] - seasonal[t];
    }
  }
  const int m = HasSeason(spec) ? spec.period : 1;
  const int maxn = std::min(std::max(10, 2 * m), n);
  if (!HasTrend(spec)) {
    double mean = 0;
    for (int t = 0; t < maxn; ++t) mean += y_sa[t];
    state.push_back(maxn > 0 ? mean / maxn : 0.0);
  } else {
    double st = 0, sy = 0, stt = 0, sty = 0;
    for (int t = 0; t < maxn; ++t) {
      const double tt = t + 1;
      st += tt;
      sy += y_sa[t];
      stt += tt * tt;
      sty += tt * y_sa[t];
    }
    const double den = maxn * stt - st * st;
    double b0 = den != 0 ? (maxn * sty - st * sy) / den : 0.0;
    double l0 = maxn > 0 ? (sy - b0 * st) / maxn : 0.0;
    if (std::fabs(l0 + b0) < 1e-8) {
      l0 *= 1.001;
      b0 *= 0.999;
    }
    state.push_back(l0);
    state.push_back(b0);
  }
  if (HasSeason(spec)) {
    init_seas.resize(spec.period - 1, mult_season ? 1.0 : 0.0);
    state.insert(state.end(), init_seas.begin(), init_seas.end());
  }
  return state;
}

// ---------------------------------------------------------------------------
// EtsModel

absl::StatusOr<std::unique_ptr<EtsModel>> EtsModel::FromParameters(
    std::span<const double> y, const EtsSpec& spec, const EtsParameters& params,
    std::span<const double> initial_state, int num_estimated) {
  PPE_ASSIGN_OR_RETURN(auto run, EtsFilter(spec, params, initial_state, y));
  auto model = std::make_unique<EtsModel>();
  model->spec_ = spec;
  model->params_ = params;
  if (!spec.damped) model->params_.phi = 1.0;
  if (!HasTrend(spec)) model->params_.beta = 0.0;
  if (!HasSeason(spec)) model->params_.gamma = 0.0;
  model->initial_state_.assign(initial_state.begin(), initial_state.end());
  model->lik_ = run.lik;
  model->n_ = static_cast<int>(y.size());
  model->num_estimated_ = num_estimated;
  double sse = 0;
  for (double e : run.residuals) sse += e * e;
  const int dof = model->n_ - num_estimated;
  model->sigma2_ = sse / (dof > 0 ? dof : std::max(model->n_, 1));
  LoadState(spec, run.final_state, model->level_, model->trend_, model->season_);
  model->pos_ = 0;
  return model;
}

std::string EtsModel::Name() const { return spec_.Name(); }

double EtsModel::Aicc() const {
  const double np = num_estimated_ + 1;
  const double aic = lik_ + 2 * np;
  const double den = n_ - np - 1;
  if (den <= 0) return std::numeric_limits<double>::infinity();
  return aic + 2 * np * (np + 1) / den;
}

void EtsModel::Update(double y) {
  const int m = static_cast<int>(season_.size());
  double* slot = m > 0 ? &season_[pos_] : nullptr;
  if (!std::isfinite(y)) {
    // Missing bucket: advance with the one-step forecast as the observation.
    y = OneStep(spec_, params_.phi, level_, trend_, slot != nullptr ? *slot : 0.0);
  }
  Step(spec_, params_, y, level_, trend_, slot);
  if (m > 0 && ++pos_ == m) pos_ = 0;
  ++n_;
}

std::vector<double> EtsModel::State() const {
  return StoreState(spec_, level_, trend_, season_, pos_);
}

std::vector<double> EtsModel::PointForecast(int horizon) const {
  std::vector<double> f(horizon);
  const int m = static_cast<int>(season_.size());
  double phi_sum = 0, phi_pow = 1;
  for (int h = 0; h < horizon; ++h) {
    double q = level_;
    if (HasTrend(spec_)) {
      phi_pow *= params_.phi;
      phi_sum += phi_pow;
      q += phi_sum * trend_;
    }
    if (m > 0) {
      const double s = season_[(pos_ + h) % m];
      q = spec_.season == Component::kAdditive ? q + s : q * s;
    }
    f[h] = q;
  }
  return f;
}

absl::StatusOr<Forecast> EtsModel::Predict(int horizon, double level) const {
  if (horizon < 1) return absl::InvalidArgumentError("horizon must be >= 1");
  if (!(level > 0 && level < 100)) return absl::InvalidArgumentError("level must be in (0, 100)");
  Forecast out;
  out.level = level;
  out.mean = PointForecast(horizon);
  out.lower.resize(horizon);
  out.upper.resize(horizon);
  const double z = NormalQuantile(0.5 + level / 200.0);
  const bool linear =
      spec_.error == Component::kAdditive && spec_.season != Component::kMultiplicative;
  if (linear) {
    // Class 1 (Hyndman et al. 2008, ch. 6): var_h = sigma2 (1 + sum c_j^2).
    const int m = static_cast<int>(season_.size());
    double acc = 0, phi_sum = 0, phi_pow = 1;
    for (int h = 0; h < horizon; ++h) {
      const double sd = std::sqrt(sigma2_ * (1 + acc));
      out.lower[h] = out.mean[h] - z * sd;
      out.upper[h] = out.mean[h] + z * sd;
      const int j = h + 1;
      double c = params_.alpha;
      if (HasTrend(spec_)) {
        phi_pow *= params_.phi;
        phi_sum += phi_pow;
        c += params_.beta * phi_sum;
      }
      if (m > 0 && j % m == 0) c += params_.gamma;
      acc += c * c;
    }
    return out;
  }
  // Other classes: simulate sample paths (fixed seed, reproducible).
  constexpr int kPaths = 2000;
  std::mt19937_64 rng(20240601);
  std::normal_distribution<double> noise(0.0, std::sqrt(sigma2_));
  std::vector<std::vector<double>> paths(horizon, std::vector<double>(kPaths));
  const int m = static_cast<int>(season_.size());
  for (int p = 0; p < kPaths; ++p) {
    double l = level_, b = trend_;
    std::vector<double> ring = season_;
    int pos = pos_;
    for (int h = 0; h < horizon; ++h) {
      double* slot = m > 0 ? &ring[pos] : nullptr;
      const double f = OneStep(spec_, params_.phi, l, b, slot != nullptr ? *slot : 0.0);
      const double e = noise(rng);
      const double yv = spec_.error == Component::kMultiplicative ? f * (1 + e) : f + e;
      paths[h][p] = yv;
      Step(spec_, params_, yv, l, b, slot);
      if (m > 0 && ++pos == m) pos = 0;
    }
  }
  const double lo_q = 0.5 - level / 200.0, hi_q = 0.5 + level / 200.0;
  auto quantile = [](std::vector<double>& v, double q) {
    // Linear interpolation between order statistics (R's type 7).
    const double idx = q * (v.size() - 1);
    const size_t i = static_cast<size_t>(idx);
    const double frac = idx - i;
    std::nth_element(v.begin(), v.begin() + i, v.end());
    const double lo = v[i];
    if (i + 1 >= v.size()) return lo;
    const double hi = *std::min_element(v.begin() + i + 1, v.end());
    return lo * (1 - frac) + hi * frac;
  };
  for (int h = 0; h < horizon; ++h) {
    out.lower[h] = quantile(paths[h], lo_q);
    out.upper[h] = quantile(paths[h], hi_q);
  }
  return out;
}

std::vector<NamedValue> EtsModel::Parameters() const {
  std::vector<NamedValue> p = {{"alpha", params_.alpha}};
  if (HasTrend(spec_)) p.emplace_back("beta", params_.beta);
  if (HasSeason(spec_)) p.emplace_back("gamma", params_.gamma);
  if (spec_.damped) p.emplace_back("phi", params_.phi);
  p.emplace_back("l0", initial_state_[0]);
  int k = 1;
  if (HasTrend(spec_)) p.emplace_back("b0", initial_state_[k++]);
  for (int j = 0; HasSeason(spec_) && j < spec_.period; ++j) {
    p.emplace_back(absl::StrCat("s", j), initial_state_[k++]);
  }
  p.emplace_back("sigma2", sigma2_);
  return p;
}

// ---------------------------------------------------------------------------
// Estimation

namespace {

// Sum of squared residuals of `f` at `x` (+inf where infeasible); `r` is scratch.
template <typename Residuals>
double SumOfSquares(const Residuals& f, std::span<const double> x, std::vector<double>& r) {
  if (!f(x, std::span<double>(r))) return HUGE_VAL;
  double ss = 0;
  for (double e : r) ss += e * e;
  return ss;
}

// The specification `spec` nests: a damped trend undamped, an undamped trend
// dropped. Its optimum maps into `spec`'s parameter space, so it is a
// starting point that keeps `spec`'s fit from ending far below the nested
// model's (beta's lower bound of 1e-4 makes the nesting approximate).
std::optional<EtsSpec> NestedSpec(const EtsSpec& spec) {
  if (!HasTrend(spec)) return std::nullopt;
  EtsSpec twin = spec;
  if (spec.damped) {
    twin.damped = false;
  } else {
    twin.trend = Component::kNone;
  }
  return twin;
}

// The objective of an ETS fit. Maximum likelihood is least squares on the
// residuals of EtsResiduals, as a function of the point
//   alpha, u, v, phi, free initial states,
// where beta = lower + u (min(alpha, upper) - lower) and
// gamma = lower + v (min(1 - alpha, upper) - lower), so that R's "usual"
// bounds (beta <= alpha, gamma <= 1 - alpha) become a box (u, v in [0, 1]).
// The first num_smooth() coordinates are the smoothing parameters; the last
// seasonal index is implied by the others. A point outside the usual bounds,
// not admissible, or with a non-positive multiplicative seasonal index is
// infeasible. Holds the scratch buffers of the evaluations, so one objective
// serves one fit at a time.
class EtsObjective {
 public:
  // R's starting point (initparam: u = 0.1, v = 0.05, the heuristic initial
  // states) and the box around it, for `spec` on `y` (finite; positive where
  // `spec` is multiplicative). Both must outlive the objective.
  EtsObjective(std::span<const double> y, const EtsSpec& spec);
  EtsObjective(const EtsObjective&) = delete;
  EtsObjective& operator=(const EtsObjective&) = delete;

  int num_residuals() const { return static_cast<int>(y_.size()); }
  int dim() const { return static_cast<int>(start_.size()); }
  int num_smooth() const { return num_smooth_; }
  const std::vector<double>& start() const { return start_; }
  const std::vector<double>& lower() const { return lower_; }
  const std::vector<double>& upper() const { return upper_; }
  // Typical magnitude per coordinate (sets the Jacobian's difference steps).
  const std::vector<double>& typical() const { return typical_; }

  // The parameters and the full initial state (R layout) at point `v`.
  void Unpack(std::span<const double> v, EtsParameters* p, std::vector<double>* state) const;

  // The residuals at a full point (false where infeasible), and of a batch
  // of points as a BatchResidualFn.
  bool Residuals(std::span<const double> v, std::span<double> r);
  void BatchResiduals(std::span<const std::vector<double>> points, std::span<double> out,
                      std::span<char> ok);
  // The same with the initial states held at start(): `v` is the smoothing
  // parameters only.
  bool SmoothingResiduals(std::span<const double> v, std::span<double> r);
  void SmoothingBatchResiduals(std::span<const std::vector<double>> points, std::span<double> out,
                               std::span<char> ok);

  // The four above bound to this objective, for MinimizeSumOfSquares.
  ResidualFn residuals_fn() {
    return [this](std::span<const double> v, std::span<double> r) { return Residuals(v, r); };
  }
  BatchResidualFn batch_fn() {
    return [this](std::span<const std::vector<double>> points, std::span<double> out,
                  std::span<char> ok) { BatchResiduals(points, out, ok); };
  }
  ResidualFn smoothing_fn() {
    return
        [this](std::span<const double> v, std::span<double> r) { return SmoothingResiduals(v, r); };
  }
  BatchResidualFn smoothing_batch_fn() {
    return [this](std::span<const std::vector<double>> points, std::span<double> out,
                  std::span<char> ok) { SmoothingBatchResiduals(points, out, ok); };
  }

 private:
  // Unpack(v) and whether the point is feasible.
  bool Feasible(std::span<const double> v, EtsParameters* p, std::vector<double>* state);

  const std::span<const double> y_;
  const EtsSpec& spec_;
  int num_smooth_ = 0;
  std::vector<double> start_, lower_, upper_, typical_;

  // The bounds and admissibility test depend on the smoothing parameters
  // only, which most Jacobian columns share: the last answer is kept.
  std::optional<EtsParameters> checked_;
  bool checked_ok_ = false;
  // Scratch: EtsResiduals' seasonal ring, one point's state, a batch's lanes,
  // and start() completed by the smoothing parameters.
  std::vector<double> ring_;
  std::vector<double> state_;
  std::vector<EtsParameters> batch_params_;
  std::vector<std::vector<double>> batch_states_;
  std::vector<EtsLane> batch_lanes_;
  std::vector<int> batch_index_;
  std::vector<double> full_;
  std::vector<std::vector<double>> full_points_;
};

EtsObjective::EtsObjective(std::span<const double> y, const EtsSpec& spec) : y_(y), spec_(spec) {
  const int n = static_cast<int>(y.size());
  const int m = Period(spec);
  double alpha = kLower[0] + 0.2 * (kUpper[0] - kLower[0]) / m;
  if (alpha > 1 || alpha < 0) alpha = kLower[0] + 2e-3;
  start_.push_back(alpha);
  lower_.push_back(kLower[0]);
  // With a season, gamma in [1e-4, 1 - alpha] is empty in floating point at
  // alpha = 0.9999 itself: stop just short of that corner.
  upper_.push_back(HasSeason(spec) ? kUpper[0] - 1e-10 : kUpper[0]);
  if (HasTrend(spec)) {
    start_.push_back(0.1);
    lower_.push_back(0);
    upper_.push_back(1);
  }
  if (HasSeason(spec)) {
    start_.push_back(0.05);
    lower_.push_back(0);
    upper_.push_back(1);
  }
  if (spec.damped) {
    start_.push_back(kLower[3] + 0.99 * (kUpper[3] - kLower[3]));
    lower_.push_back(kLower[3]);
    upper_.push_back(kUpper[3]);
  }
  num_smooth_ = static_cast<int>(start_.size());
  typical_.assign(num_smooth_, 0.1);
  std::vector<double> init = EtsHeuristicState(y, spec);
  start_.insert(start_.end(), init.begin(), init.end());
  double scale = 0;
  for (double v : y) scale += std::fabs(v);
  scale = std::max(scale / n, 1e-8);
  const int season_off = num_smooth_ + (HasTrend(spec) ? 2 : 1);
  for (int i = num_smooth_; i < dim(); ++i) {
    const bool mult_seas = spec.season == Component::kMultiplicative && i >= season_off;
    typical_.push_back(mult_seas ? 1.0 : (i == num_smooth_ ? scale : 0.1 * scale));
    lower_.push_back(-HUGE_VAL);
    upper_.push_back(HUGE_VAL);
  }
  full_ = start_;
}

void EtsObjective::Unpack(std::span<const double> v, EtsParameters* p,
                          std::vector<double>* state) const {
  int k = 0;
  p->alpha = v[k++];
  if (HasTrend(spec_)) {
    p->beta = kLower[1] + v[k++] * (std::min(p->alpha, kUpper[1]) - kLower[1]);
  }
  if (HasSeason(spec_)) {
    p->gamma = kLower[2] + v[k++] * (std::min(1 - p->alpha, kUpper[2]) - kLower[2]);
  }
  p->phi = spec_.damped ? v[k++] : 1.0;
  state->assign(v.begin() + num_smooth_, v.end());
  if (HasSeason(spec_)) {
    const int off = HasTrend(spec_) ? 2 : 1;
    double sum = 0;
    for (size_t j = off; j < state->size(); ++j) sum += (*state)[j];
    state->push_back((spec_.season == Component::kMultiplicative ? Period(spec_) : 0) - sum);
  }
}

bool EtsObjective::Feasible(std::span<const double> v, EtsParameters* p,
                            std::vector<double>* state) {
  Unpack(v, p, state);
  if (!checked_ || p->alpha != checked_->alpha || p->beta != checked_->beta ||
      p->gamma != checked_->gamma || p->phi != checked_->phi) {
    checked_ = *p;
    checked_ok_ = CheckParams(spec_, *p);
  }
  if (!checked_ok_) return false;
  if (spec_.season == Component::kMultiplicative) {
    const int off = HasTrend(spec_) ? 2 : 1;
    for (size_t j = off; j < state->size(); ++j) {
      if ((*state)[j] <= 0) return false;
    }
  }
  return true;
}

bool EtsObjective::Residuals(std::span<const double> v, std::span<double> r) {
  EtsParameters p;
  if (!Feasible(v, &p, &state_)) return false;
  EtsLane lane{&p, state_.data(), r.data()};
  EtsResiduals(spec_, std::span<EtsLane>(&lane, 1), y_, ring_);
  return lane.ok;
}

// The points run as lanes of one EtsResiduals pass.
void EtsObjective::BatchResiduals(std::span<const std::vector<double>> points,
                                  std::span<double> out, std::span<char> ok) {
  const size_t count = points.size();
  const size_t n = y_.size();
  batch_params_.resize(count);
  batch_states_.resize(count);
  batch_lanes_.clear();
  batch_index_.clear();
  for (size_t j = 0; j < count; ++j) {
    ok[j] = Feasible(points[j], &batch_params_[j], &batch_states_[j]);
    if (!ok[j]) continue;
    batch_lanes_.push_back({&batch_params_[j], batch_states_[j].data(), out.data() + j * n});
    batch_index_.push_back(static_cast<int>(j));
  }
  EtsResiduals(spec_, batch_lanes_, y_, ring_);
  for (size_t i = 0; i < batch_lanes_.size(); ++i) ok[batch_index_[i]] = batch_lanes_[i].ok;
}

bool EtsObjective::SmoothingResiduals(std::span<const double> v, std::span<double> r) {
  std::copy(v.begin(), v.end(), full_.begin());
  return Residuals(full_, r);
}

void EtsObjective::SmoothingBatchResiduals(std::span<const std::vector<double>> points,
                                           std::span<double> out, std::span<char> ok) {
  full_points_.resize(points.size(), start_);
  for (size_t j = 0; j < points.size(); ++j) {
    std::copy(points[j].begin(), points[j].end(), full_points_[j].begin());
  }
  BatchResiduals(full_points_, out, ok);
}

// A point and its sum of squares.
struct Candidate {
  std::vector<double> x;
  double sum_squares;
};

// Starting points for the smoothing parameters: R's (`objective.start()`), a
// moderate and a fast-adapting one; with `keep` > 0, the `keep` of them with
// the smallest sum of squares (one pass each).
std::vector<std::vector<double>> SmoothingStarts(const EtsSpec& spec, EtsObjective& objective,
                                                 int keep) {
  const std::vector<double>& x = objective.start();
  std::vector<std::vector<double>> starts = {
      std::vector<double>(x.begin(), x.begin() + objective.num_smooth())};
  for (double a : {0.5, 0.9}) {
    for (double phi : {0.95, 0.82}) {
      if (!spec.damped && phi != 0.95) continue;
      std::vector<double> v = {a};
      if (HasTrend(spec)) v.push_back(0.1);
      if (HasSeason(spec)) v.push_back(0.5);
      if (spec.damped) v.push_back(phi);
      starts.push_back(v);
    }
  }
  if (keep > 0 && static_cast<int>(starts.size()) > keep) {
    std::vector<double> r(objective.num_residuals());
    std::vector<std::pair<double, std::vector<double>>> scored;
    const ResidualFn smoothing = objective.smoothing_fn();
    for (auto& start : starts) {
      const double ss = SumOfSquares(smoothing, start, r);
      scored.emplace_back(ss, std::move(start));
    }
    std::stable_sort(scored.begin(), scored.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    starts.clear();
    for (int i = 0; i < keep; ++i) starts.push_back(std::move(scored[i].second));
  }
  return starts;
}

// A start for `spec` (a trend model) at the optimum `nested` of
// NestedSpec(spec), in the coordinates of an objective of dimension `dim`.
std::vector<double> StartFromNested(const EtsSpec& spec, const EtsModel& nested, int dim) {
  const EtsParameters& np = nested.params();
  auto frac = [](double value, double low, double high) {
    return high > low ? std::clamp((value - low) / (high - low), 0.0, 1.0) : 0.0;
  };
  std::vector<double> w = {
      np.alpha, spec.damped ? frac(np.beta, kLower[1], std::min(np.alpha, kUpper[1])) : 0.0};
  if (HasSeason(spec)) {
    w.push_back(frac(np.gamma, kLower[2], std::min(1 - np.alpha, kUpper[2])));
  }
  if (spec.damped) w.push_back(kUpper[3]);
  // Initial states: l0, b0 (0 where the nested model has none), then the
  // free seasonal indices.
  const std::vector<double>& s0 = nested.initial_state();
  const int s0_season = spec.damped ? 2 : 1;
  w.push_back(s0[0]);
  w.push_back(spec.damped ? s0[1] : 0.0);
  const int free_seasons = dim - static_cast<int>(w.size());
  w.insert(w.end(), s0.begin() + s0_season, s0.begin() + s0_season + free_seasons);
  return w;
}

// FitEts; a specification with a trend also starts from `nested`, a fit of
// NestedSpec(spec) (fitted here when null: fully for a damped trend's
// undamped twin, the smoothing parameters only for the no-trend twin).
absl::StatusOr<std::unique_ptr<EtsModel>> FitEtsFrom(std::span<const double> y, const EtsSpec& spec,
                                                     const EtsFitOptions& options,
                                                     const EtsModel* nested) {
  const int n = static_cast<int>(y.size());
  for (double v : y) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("series contains non-finite values");
  }
  const bool positive = std::all_of(y.begin(), y.end(), [](double v) { return v > 0; });
  if ((spec.error == Component::kMultiplicative || spec.season == Component::kMultiplicative) &&
      !positive) {
    return absl::FailedPreconditionError("multiplicative components need positive data");
  }
  EtsObjective objective(y, spec);
  const std::vector<double>& x = objective.start();
  const int num_smooth = objective.num_smooth();
  const int dim = objective.dim();
  if (dim + 1 >= n - 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(spec.Name(), " needs more than ", dim + 2, " observations"));
  }

  // Stage 1: smoothing parameters only, initial states held at the heuristic.
  LeastSquaresOptions lso;
  lso.batch = objective.smoothing_batch_fn();
  lso.max_iterations = options.max_iterations;
  lso.broyden_span = options.broyden_span;
  lso.lower.assign(objective.lower().begin(), objective.lower().begin() + num_smooth);
  lso.upper.assign(objective.upper().begin(), objective.upper().begin() + num_smooth);
  lso.scale.assign(objective.typical().begin(), objective.typical().begin() + num_smooth);
  const std::vector<std::vector<double>> starts =
      SmoothingStarts(spec, objective, options.smooth_starts);
  lso.ftol = options.ftol;
  // lik = n log(S): a relative change of S by c moves lik by about n c.
  lso.stall_ftol = options.stall_loglik / n;
  const ResidualFn smoothing = objective.smoothing_fn();
  std::vector<Candidate> stage1;
  for (const auto& start : starts) {
    LeastSquaresResult r = MinimizeSumOfSquares(smoothing, n, start, lso);
    if (!std::isfinite(r.sum_squares)) continue;
    std::vector<double> v = x;
    std::copy(r.x.begin(), r.x.end(), v.begin());
    stage1.push_back({v, r.sum_squares});
  }
  if (options.fit_initial_states) {
    // Far from the optimum the residuals can be so nonlinear (one-step
    // forecasts near zero in a multiplicative model) that Levenberg-Marquardt
    // stalls at its start; a short Nelder-Mead run from R's start (at most 300
    // evaluations in <= 4 dimensions) does not, and its optimum is one more
    // candidate.
    std::vector<double> r(n);
    auto sum_squares = [&](std::span<const double> v) { return SumOfSquares(smoothing, v, r); };
    MinimizeOptions mo;
    mo.max_evaluations = 300;
    mo.ftol_rel = 1e-8;
    mo.lower = lso.lower;
    mo.upper = lso.upper;
    mo.initial_step.assign(num_smooth, 0.05);
    MinimizeResult nm =
        Minimize(sum_squares, std::vector<double>(x.begin(), x.begin() + num_smooth), mo);
    if (std::isfinite(nm.value) && nm.value < HUGE_VAL) {
      std::vector<double> v = x;
      std::copy(nm.x.begin(), nm.x.end(), v.begin());
      stage1.push_back({v, nm.value});
    }
  }
  std::sort(stage1.begin(), stage1.end(),
            [](const Candidate& a, const Candidate& b) { return a.sum_squares < b.sum_squares; });
  if (stage1.empty()) {
    return absl::InternalError(absl::StrCat(spec.Name(), ": no admissible parameters found"));
  }
  Candidate best = stage1[0];
  if (options.fit_initial_states) {
    // The best stage-1 results in distinct basins (smoothing parameters apart);
    // an undamped trend model gives one of these places to its nested start.
    const int from_stage1 = options.joint_starts - (HasTrend(spec) && !spec.damped ? 1 : 0);
    std::vector<Candidate> joint_starts;
    for (const Candidate& c : stage1) {
      bool distinct = true;
      for (const Candidate& j : joint_starts) {
        double d = 0;
        for (int i = 0; i < num_smooth; ++i) d = std::max(d, std::fabs(c.x[i] - j.x[i]));
        distinct = distinct && d > 0.05;
      }
      if (distinct && static_cast<int>(joint_starts.size()) < from_stage1) {
        joint_starts.push_back(c);
      }
    }
    // A trend model also starts from the optimum of the model it nests: a
    // damped one from the undamped (phi at its upper bound), an undamped one
    // from the one without trend (b0 = 0, beta at its lower bound). The
    // latter keeps ETS(M,A,M) out of the fast-adapting-season basin that its
    // heuristic initial trend and season lead to on some strongly seasonal
    // series (H152: log-likelihood -6805.6 without it, -5366.8 with it, R's
    // -5389.9).
    std::unique_ptr<EtsModel> own_nested;
    const std::optional<EtsSpec> twin = NestedSpec(spec);
    if (twin && nested == nullptr) {
      EtsFitOptions twin_options = options;
      if (!spec.damped) {
        twin_options.fit_initial_states = false;
        twin_options.smooth_starts = 1;
        twin_options.ftol = 1e-6;
      }
      auto fit = FitEtsFrom(y, *twin, twin_options, nullptr);
      if (fit.ok()) own_nested = std::move(*fit);
      nested = own_nested.get();
    }
    const ResidualFn residuals = objective.residuals_fn();
    if (nested != nullptr) {
      std::vector<double> w = StartFromNested(spec, *nested, dim);
      std::vector<double> r(n);
      const double ss = SumOfSquares(residuals, w, r);
      if (ss < HUGE_VAL) joint_starts.push_back({w, ss});
    }
    // Stage 2: smoothing parameters and initial states jointly from each start.
    lso.lower = objective.lower();
    lso.upper = objective.upper();
    lso.scale = objective.typical();
    lso.batch = objective.batch_fn();
    for (const Candidate& start : joint_starts) {
      LeastSquaresResult r = MinimizeSumOfSquares(residuals, n, start.x, lso);
      if (r.sum_squares < best.sum_squares) best = {r.x, r.sum_squares};
    }
  }
  EtsParameters p;
  std::vector<double> state;
  objective.Unpack(best.x, &p, &state);
  return EtsModel::FromParameters(y, spec, p, state, dim);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtsModel>> FitEts(std::span<const double> y, const EtsSpec& spec,
                                                 const EtsFitOptions& options) {
  return FitEtsFrom(y, spec, options, nullptr);
}

absl::StatusOr<std::unique_ptr<EtsModel>> FitEtsAuto(std::span<const double> y, int period,
                                                     const EtsFitOptions& options) {
  const int n = static_cast<int>(y.size());
  if (n < 3) return absl::FailedPreconditionError("ETS needs at least 3 observations");
  const bool positive = std::all_of(y.begin(), y.end(), [](double v) { return v > 0; });
  const bool seasonal = period >= 2 && period <= options.max_period && n >= period + 2;
  std::vector<EtsSpec> specs;
  for (Component e : {Component::kAdditive, Component::kMultiplicative}) {
    if (e == Component::kMultiplicative && !(positive && options.allow_multiplicative)) continue;
    for (Component t : {Component::kNone, Component::kAdditive}) {
      for (bool d : {false, true}) {
        if (d && (t == Component::kNone || !options.allow_damped)) continue;
        for (Component s : {Component::kNone, Component::kAdditive, Component::kMultiplicative}) {
          if (s != Component::kNone && !seasonal) continue;
          if (s == Component::kMultiplicative && !(positive && options.allow_multiplicative)) {
            continue;
          }
          if (e == Component::kAdditive && s == Component::kMultiplicative) continue;
          EtsSpec spec{e, t, s, d, s != Component::kNone ? period : 1};
          specs.push_back(spec);
        }
      }
    }
  }
  // Screen every specification with the smoothing parameters only, then fit
  // the most promising ones fully (initial states and parameters jointly).
  EtsFitOptions screen = options;
  screen.fit_initial_states = false;
  screen.smooth_starts = 1;
  screen.ftol = 1e-6;
  std::vector<std::pair<double, EtsSpec>> ranked;
  absl::Status last = absl::FailedPreconditionError("no ETS model could be fitted");
  for (const EtsSpec& spec : specs) {
    auto fit = FitEts(y, spec, screen);
    if (!fit.ok()) {
      last = fit.status();
      continue;
    }
    if (!std::isfinite((*fit)->Aicc())) continue;
    ranked.emplace_back((*fit)->Aicc(), spec);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  if (options.full_fits > 0 && static_cast<int>(ranked.size()) > options.full_fits) {
    ranked.resize(options.full_fits);
  }
  // Full fits, undamped before damped: a damped fit starts from its undamped
  // twin's, which is fitted (and a candidate) even if it was not short-listed.
  // (An undamped trend's no-trend start is fitted inside FitEtsFrom, the same
  // way whether or not that model is short-listed, so that a specification's
  // estimate does not depend on the others.)
  std::vector<EtsSpec> full;
  for (const auto& [aicc, spec] : ranked) {
    if (spec.damped) {
      EtsSpec twin = spec;
      twin.damped = false;
      full.push_back(twin);
    }
    full.push_back(spec);
  }
  std::vector<std::unique_ptr<EtsModel>> fitted;
  auto find = [&](const EtsSpec& spec) -> const EtsModel* {
    for (const auto& m : fitted) {
      if (m->Name() == spec.Name()) return m.get();
    }
    return nullptr;
  };
  std::unique_ptr<EtsModel>* best = nullptr;
  for (const EtsSpec& spec : full) {
    if (find(spec) != nullptr) continue;
    EtsSpec twin = spec;
    twin.damped = false;
    auto fit = FitEtsFrom(y, spec, options, spec.damped ? find(twin) : nullptr);
    if (!fit.ok()) {
      last = fit.status();
      continue;
    }
    fitted.push_back(std::move(*fit));
  }
  for (auto& m : fitted) {
    if (!std::isfinite(m->Aicc())) continue;
    if (best == nullptr || m->Aicc() < (*best)->Aicc()) best = &m;
  }
  if (best == nullptr) return last;
  return std::move(*best);
}

}  // namespace ppe::forecast
