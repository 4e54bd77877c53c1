#include "ppe-service/forecast/least_squares.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

namespace ppe::forecast {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One run of MinimizeSumOfSquares: the current point with its residuals and
// sum of squares, the Jacobian there (differenced, or carried by Broyden
// updates in between) with J'J, the damping, and the stopping counters.
class LevenbergMarquardt {
 public:
  LevenbergMarquardt(const ResidualFn& f, int num_residuals, std::vector<double> x0,
                     const LeastSquaresOptions& options);

  LeastSquaresResult Run();

 private:
  double lower(int j) const { return options_.lower.empty() ? -kInf : options_.lower[j]; }
  double upper(int j) const { return options_.upper.empty() ? kInf : options_.upper[j]; }
  double typical(int j) const { return options_.scale.empty() ? 1.0 : options_.scale[j]; }

  // The sum of squares at `x`, its residuals into `res`; +inf where infeasible.
  double Eval(const std::vector<double>& x, Eigen::VectorXd& res);
  // Forward-difference Jacobian at x_, stepping inwards at a bound (in one
  // batch if the caller can); a column infeasible forwards is tried
  // backwards, and one infeasible both ways is left out of this iteration
  // (usable_[j] false). Then J'J.
  void Jacobian();
  // Usable columns not held at a bound by the gradient `g`.
  std::vector<int> FreeSet(const Eigen::VectorXd& g) const;
  // One iteration; false when the run stops.
  bool Step();
  // For the infeasible trial xt_ over `free`: bisects along the same
  // direction for the last feasible fraction of the step (the solution may
  // lie on the constraint). Leaves the best point found in xt_ (its
  // residuals in trial_) and returns its sum of squares; leaves xt_ and
  // returns +inf if none is feasible.
  double Bisect(const std::vector<int>& free);
  // Moves to the better trial xt_ (sum of squares `st`): damping from the
  // gain ratio against the linear model (`af`, `gf` on `free`; Nielsen's
  // update) and, with Broyden updates on, a rank-one update of the Jacobian.
  void Accept(const std::vector<int>& free, const Eigen::MatrixXd& af, const Eigen::VectorXd& gf,
              double st, int attempt);
  // The parameters of `free` whose own move to xt_ is feasible.
  std::vector<int> MovableAlone(const std::vector<int>& free);
  void IncreaseDamping() {
    lambda_ *= nu_;
    nu_ *= 2;
  }

  const ResidualFn& f_;
  const int num_residuals_;
  const int k_;  // Number of parameters.
  const LeastSquaresOptions& options_;
  const double h_rel_ = std::sqrt(std::numeric_limits<double>::epsilon());
  LeastSquaresResult out_;

  std::vector<double> x_, xt_;  // The current point and a trial.
  double s_ = kInf;             // Sum of squares at x_.
  // Residuals at x_, at the trial, and scratch for one more point.
  Eigen::VectorXd r_, trial_, col_;
  Eigen::MatrixXd jac_, a_;  // a_ = J'J.
  std::vector<char> usable_, feasible_;
  std::vector<std::vector<double>> points_;  // The Jacobian's difference points.
  std::vector<double> history_;              // s_ after each iteration.
  double lambda_ = 1e-3, nu_ = 2;
  int small_gains_ = 0;
  // Iterations left before the Jacobian is differenced again; in between it
  // (and J'J) is carried by Broyden updates. 0: difference it this iteration.
  int broyden_left_ = 0;
};

LevenbergMarquardt::LevenbergMarquardt(const ResidualFn& f, int num_residuals,
                                       std::vector<double> x0, const LeastSquaresOptions& options)
    : f_(f),
      num_residuals_(num_residuals),
      k_(static_cast<int>(x0.size())),
      options_(options),
      xt_(k_),
      r_(num_residuals),
      trial_(num_residuals),
      col_(num_residuals),
      jac_(num_residuals, k_),
      a_(k_, k_),
      usable_(k_),
      feasible_(k_),
      points_(k_) {
  for (int j = 0; j < k_; ++j) x0[j] = std::clamp(x0[j], lower(j), upper(j));
  out_.x = std::move(x0);
}

double LevenbergMarquardt::Eval(const std::vector<double>& x, Eigen::VectorXd& res) {
  ++out_.evaluations;
  if (!f_(x, std::span<double>(res.data(), num_residuals_))) return kInf;
  const double s = res.squaredNorm();
  return std::isfinite(s) ? s : kInf;
}

LeastSquaresResult LevenbergMarquardt::Run() {
  s_ = Eval(out_.x, r_);
  out_.sum_squares = s_;
  if (!std::isfinite(s_) || k_ == 0) return out_;
  x_ = out_.x;
  history_ = {s_};
  for (out_.iterations = 0; out_.iterations < options_.max_iterations && Step();
       ++out_.iterations) {
  }
  out_.x = x_;
  out_.sum_squares = s_;
  return out_;
}

void LevenbergMarquardt::Jacobian() {
  for (int j = 0; j < k_; ++j) {
    double h = h_rel_ * std::max(std::fabs(x_[j]), typical(j));
    if (x_[j] + h > upper(j)) h = -h;
    points_[j] = x_;
    points_[j][j] = std::clamp(x_[j] + h, lower(j), upper(j));
  }
  if (options_.batch) {
    out_.evaluations += k_;
    options_.batch(points_, std::span<double>(jac_.data(), jac_.size()), feasible_);
  } else {
    for (int j = 0; j < k_; ++j) {
      feasible_[j] = std::isfinite(Eval(points_[j], col_));
      if (feasible_[j]) jac_.col(j) = col_;
    }
  }
  for (int j = 0; j < k_; ++j) {
    double step = points_[j][j] - x_[j];
    bool ok = feasible_[j] && std::isfinite(jac_.col(j).squaredNorm());
    if (!ok) {
      const double back = x_[j] - step;
      if (back >= lower(j) && back <= upper(j)) {
        xt_ = x_;
        xt_[j] = back;
        ok = std::isfinite(Eval(xt_, col_));
        if (ok) {
          jac_.col(j) = col_;
          step = -step;
        }
      }
    }
    usable_[j] = ok && step != 0;
    if (usable_[j]) {
      jac_.col(j) = (jac_.col(j) - r_) / step;
    } else {
      jac_.col(j).setZero();
    }
  }
  a_.setZero();
  a_.selfadjointView<Eigen::Lower>().rankUpdate(jac_.transpose());
  a_ = a_.selfadjointView<Eigen::Lower>();
}

std::vector<int> LevenbergMarquardt::FreeSet(const Eigen::VectorXd& g) const {
  std::vector<int> free;
  for (int j = 0; j < k_; ++j) {
    if (!usable_[j]) continue;
    if (x_[j] <= lower(j) && g[j] > 0) continue;
    if (x_[j] >= upper(j) && g[j] < 0) continue;
    free.push_back(j);
  }
  return free;
}

bool LevenbergMarquardt::Step() {
  const bool exact = broyden_left_ == 0;
  broyden_left_ = exact ? options_.broyden_span : broyden_left_ - 1;
  if (exact) Jacobian();
  const Eigen::VectorXd g = jac_.transpose() * r_;
  std::vector<int> free = FreeSet(g);
  bool accepted = false, converged = false, narrowed = false;
  for (int attempt = 0; attempt < 40 && !accepted && !free.empty(); ++attempt) {
    // The damped normal equations on the free set.
    const int kf = static_cast<int>(free.size());
    Eigen::MatrixXd af(kf, kf);
    Eigen::VectorXd gf(kf);
    double max_diag = 0;
    for (int p = 0; p < kf; ++p) {
      gf[p] = g[free[p]];
      for (int q = 0; q < kf; ++q) af(p, q) = a_(free[p], free[q]);
      max_diag = std::max(max_diag, af(p, p));
    }
    if (max_diag <= 0) break;
    Eigen::MatrixXd m = af;
    for (int p = 0; p < kf; ++p) m(p, p) += lambda_ * std::max(af(p, p), 1e-12 * max_diag);
    const Eigen::VectorXd delta = m.ldlt().solve(-gf);
    xt_ = x_;
    double step_norm = 0, x_norm = 0;
    for (int p = 0; p < kf; ++p) {
      const int j = free[p];
      xt_[j] = std::clamp(x_[j] + delta[p], lower(j), upper(j));
      step_norm += std::pow((xt_[j] - x_[j]) / typical(j), 2);
      x_norm += std::pow(x_[j] / typical(j), 2);
    }
    if (!delta.allFinite() || std::sqrt(step_norm) <= options_.xtol * (std::sqrt(x_norm) + 1)) {
      converged = true;
      break;
    }
    double st = Eval(xt_, trial_);
    if (!std::isfinite(st)) st = Bisect(free);
    if (st < s_) {
      Accept(free, af, gf, st, attempt);
      accepted = true;
    } else if (!std::isfinite(st) && !narrowed) {
      // Infeasible step (e.g. across a nonlinear constraint the point sits
      // on): hold, for this iteration, the parameters whose own move is
      // infeasible, and solve again for the others.
      narrowed = true;
      std::vector<int> movable = MovableAlone(free);
      if (movable.size() == free.size()) IncreaseDamping();
      free.swap(movable);
    } else {
      IncreaseDamping();
    }
  }
  if (!accepted || converged || small_gains_ >= 2) {
    // Stop only on a differenced Jacobian.
    if (!exact) {
      broyden_left_ = 0;
      small_gains_ = 0;
      return true;
    }
    return false;
  }
  // Crawling (many accepted steps, each just above ftol): stop when the
  // last `stall_window` iterations together gained less than stall_ftol.
  history_.push_back(s_);
  const int w = options_.stall_window;
  return !(w > 0 && static_cast<int>(history_.size()) > w &&
           history_[history_.size() - 1 - w] - s_ <= options_.stall_ftol * s_);
}

double LevenbergMarquardt::Bisect(const std::vector<int>& free) {
  const std::vector<double> full = xt_;
  std::vector<double> best_x;
  double lo = 0, hi = 1, best_st = kInf;
  for (int b = 0; b < 5; ++b) {
    const double mid = 0.5 * (lo + hi);
    for (const int j : free) xt_[j] = x_[j] + mid * (full[j] - x_[j]);
    const double sm = Eval(xt_, col_);
    if (std::isfinite(sm)) {
      lo = mid;
      if (sm < best_st) {
        best_st = sm;
        best_x = xt_;
        trial_ = col_;
      }
    } else {
      hi = mid;
    }
  }
  if (best_x.empty()) {
    xt_ = full;
    return kInf;
  }
  xt_ = best_x;
  return best_st;
}

void LevenbergMarquardt::Accept(const std::vector<int>& free, const Eigen::MatrixXd& af,
                                const Eigen::VectorXd& gf, double st, int attempt) {
  const int kf = static_cast<int>(free.size());
  Eigen::VectorXd d(kf);
  for (int p = 0; p < kf; ++p) d[p] = xt_[free[p]] - x_[free[p]];
  const double predicted = -(2 * gf.dot(d) + d.dot(af * d));
  const double rho = predicted > 0 ? (s_ - st) / predicted : 0.5;
  lambda_ = std::max(lambda_ * std::max(1.0 / 3, 1 - std::pow(2 * rho - 1, 3)), 1e-12);
  nu_ = 2;
  small_gains_ = (s_ - st) <= options_.ftol * s_ ? small_gains_ + 1 : 0;
  if (options_.broyden_span > 0) {
    // Rank-one (Broyden) update of the Jacobian along the step taken:
    // J += (r_new - r - J d) d' / d'd, on the usable columns.
    Eigen::VectorXd step_full = Eigen::VectorXd::Zero(k_);
    for (int p = 0; p < kf; ++p) step_full[free[p]] = d[p];
    const double dd = step_full.squaredNorm();
    if (dd > 0) {
      col_ = (trial_ - r_ - jac_ * step_full) / dd;
      // J'J follows: (J + c d')'(J + c d') = J'J + J'c d' + d c'J + (c'c) d d'.
      const Eigen::VectorXd jc = jac_.transpose() * col_;
      a_ += jc * step_full.transpose() + step_full * jc.transpose() +
            col_.squaredNorm() * step_full * step_full.transpose();
      for (int j = 0; j < k_; ++j) {
        if (usable_[j] && step_full[j] != 0) jac_.col(j) += col_ * step_full[j];
      }
    }
    // A poor model of the decrease: difference the Jacobian next time.
    if (rho < 0.25 || attempt > 0) broyden_left_ = 0;
  }
  x_ = xt_;
  s_ = st;
  r_.swap(trial_);
}

std::vector<int> LevenbergMarquardt::MovableAlone(const std::vector<int>& free) {
  std::vector<int> movable;
  for (const int j : free) {
    std::vector<double> xj = x_;
    xj[j] = xt_[j];
    if (std::isfinite(Eval(xj, col_))) movable.push_back(j);
  }
  return movable;
}

}  // namespace

LeastSquaresResult MinimizeSumOfSquares(const ResidualFn& f, int num_residuals,
                                        std::vector<double> x0,
                                        const LeastSquaresOptions& options) {
  return LevenbergMarquardt(f, num_residuals, std::move(x0), options).Run();
}

}  // namespace ppe::forecast
