#include "ppe-service/forecast/least_squares.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

namespace ppe::forecast {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

LeastSquaresResult MinimizeSumOfSquares(const ResidualFn& f, int num_residuals,
                                        std::vector<double> x0,
                                        const LeastSquaresOptions& options) {
  const int k = static_cast<int>(x0.size());
  auto lower = [&](int j) { return options.lower.empty() ? -kInf : options.lower[j]; };
  auto upper = [&](int j) { return options.upper.empty() ? kInf : options.upper[j]; };
  auto typical = [&](int j) { return options.scale.empty() ? 1.0 : options.scale[j]; };
  for (int j = 0; j < k; ++j) x0[j] = std::clamp(x0[j], lower(j), upper(j));

  LeastSquaresResult out;
  out.x = x0;
  Eigen::VectorXd r(num_residuals), trial(num_residuals), col(num_residuals);
  auto eval = [&](const std::vector<double>& x, Eigen::VectorXd& res) {
    ++out.evaluations;
    if (!f(x, std::span<double>(res.data(), num_residuals))) return kInf;
    const double s = res.squaredNorm();
    return std::isfinite(s) ? s : kInf;
  };
  double s = eval(out.x, r);
  out.sum_squares = s;
  if (!std::isfinite(s) || k == 0) return out;

  Eigen::MatrixXd jac(num_residuals, k), a(k, k);  // a = J'J
  std::vector<double> x = out.x, xt(k);
  std::vector<char> usable(k), feasible(k);
  std::vector<std::vector<double>> points(k);
  std::vector<double> history = {s};
  double lambda = 1e-3, nu = 2;
  int small_gains = 0;
  const double h_rel = std::sqrt(std::numeric_limits<double>::epsilon());
  // Iterations left before the Jacobian is differenced again; in between it
  // (and J'J) is carried by Broyden updates. 0: difference it this iteration.
  int broyden_left = 0;
  for (out.iterations = 0; out.iterations < options.max_iterations; ++out.iterations) {
    const bool exact = broyden_left == 0;
    broyden_left = exact ? options.broyden_span : broyden_left - 1;
    if (exact) {
      // Forward-difference Jacobian, stepping inwards at a bound (in one
      // batch if the caller can); a column infeasible forwards is tried
      // backwards, and one infeasible both ways is left out of this iteration.
      for (int j = 0; j < k; ++j) {
        double h = h_rel * std::max(std::fabs(x[j]), typical(j));
        if (x[j] + h > upper(j)) h = -h;
        points[j] = x;
        points[j][j] = std::clamp(x[j] + h, lower(j), upper(j));
      }
      if (options.batch) {
        out.evaluations += k;
        options.batch(points, std::span<double>(jac.data(), jac.size()), feasible);
      } else {
        for (int j = 0; j < k; ++j) {
          feasible[j] = std::isfinite(eval(points[j], col));
          if (feasible[j]) jac.col(j) = col;
        }
      }
      for (int j = 0; j < k; ++j) {
        double step = points[j][j] - x[j];
        bool ok = feasible[j] && std::isfinite(jac.col(j).squaredNorm());
        if (!ok) {
          const double back = x[j] - step;
          if (back >= lower(j) && back <= upper(j)) {
            xt = x;
            xt[j] = back;
            ok = std::isfinite(eval(xt, col));
            if (ok) {
              jac.col(j) = col;
              step = -step;
            }
          }
        }
        usable[j] = ok && step != 0;
        if (usable[j]) {
          jac.col(j) = (jac.col(j) - r) / step;
        } else {
          jac.col(j).setZero();
        }
      }
      a.setZero();
      a.selfadjointView<Eigen::Lower>().rankUpdate(jac.transpose());
      a = a.selfadjointView<Eigen::Lower>();
    }
    const Eigen::VectorXd g = jac.transpose() * r;
    // Free set: usable columns not held at a bound by the gradient.
    std::vector<int> free;
    for (int j = 0; j < k; ++j) {
      if (!usable[j]) continue;
      if (x[j] <= lower(j) && g[j] > 0) continue;
      if (x[j] >= upper(j) && g[j] < 0) continue;
      free.push_back(j);
    }
    bool accepted = false, converged = false, narrowed = false;
    for (int attempt = 0; attempt < 40 && !accepted && !free.empty(); ++attempt) {
      const int kf = static_cast<int>(free.size());
      Eigen::MatrixXd af(kf, kf);
      Eigen::VectorXd gf(kf);
      double max_diag = 0;
      for (int p = 0; p < kf; ++p) {
        gf[p] = g[free[p]];
        for (int q = 0; q < kf; ++q) af(p, q) = a(free[p], free[q]);
        max_diag = std::max(max_diag, af(p, p));
      }
      if (max_diag <= 0) break;
      Eigen::MatrixXd m = af;
      for (int p = 0; p < kf; ++p) m(p, p) += lambda * std::max(af(p, p), 1e-12 * max_diag);
      const Eigen::VectorXd delta = m.ldlt().solve(-gf);
      xt = x;
      double step_norm = 0, x_norm = 0;
      for (int p = 0; p < kf; ++p) {
        const int j = free[p];
        xt[j] = std::clamp(x[j] + delta[p], lower(j), upper(j));
        step_norm += std::pow((xt[j] - x[j]) / typical(j), 2);
        x_norm += std::pow(x[j] / typical(j), 2);
      }
      if (!delta.allFinite() || std::sqrt(step_norm) <= options.xtol * (std::sqrt(x_norm) + 1)) {
        converged = true;
        break;
      }
      double st = eval(xt, trial);
      if (!std::isfinite(st)) {
        // Infeasible: bisect along the same direction for the last feasible
        // fraction of the step (the solution may lie on the constraint).
        const std::vector<double> full = xt;
        std::vector<double> best_x;
        double lo = 0, hi = 1, best_st = kInf;
        for (int b = 0; b < 5; ++b) {
          const double mid = 0.5 * (lo + hi);
          for (int p = 0; p < kf; ++p) {
            const int j = free[p];
            xt[j] = x[j] + mid * (full[j] - x[j]);
          }
          const double sm = eval(xt, col);
          if (std::isfinite(sm)) {
            lo = mid;
            if (sm < best_st) {
              best_st = sm;
              best_x = xt;
              trial = col;
            }
          } else {
            hi = mid;
          }
        }
        if (best_x.empty()) {
          xt = full;
        } else {
          xt = best_x;
          st = best_st;
        }
      }
      if (st < s) {
        // Gain ratio against the linear model's predicted decrease (Nielsen's update).
        Eigen::VectorXd d(kf);
        for (int p = 0; p < kf; ++p) d[p] = xt[free[p]] - x[free[p]];
        const double predicted = -(2 * gf.dot(d) + d.dot(af * d));
        const double rho = predicted > 0 ? (s - st) / predicted : 0.5;
        lambda = std::max(lambda * std::max(1.0 / 3, 1 - std::pow(2 * rho - 1, 3)), 1e-12);
        nu = 2;
        small_gains = (s - st) <= options.ftol * s ? small_gains + 1 : 0;
        if (options.broyden_span > 0) {
          // Rank-one (Broyden) update of the Jacobian along the step taken:
          // J += (r_new - r - J d) d' / d'd, on the usable columns.
          Eigen::VectorXd step_full = Eigen::VectorXd::Zero(k);
          for (int p = 0; p < kf; ++p) step_full[free[p]] = d[p];
          const double dd = step_full.squaredNorm();
          if (dd > 0) {
            col = (trial - r - jac * step_full) / dd;
            // J'J follows: (J + c d')'(J + c d') = J'J + J'c d' + d c'J + (c'c) d d'.
            const Eigen::VectorXd jc = jac.transpose() * col;
            a += jc * step_full.transpose() + step_full * jc.transpose() +
                 col.squaredNorm() * step_full * step_full.transpose();
            for (int j = 0; j < k; ++j) {
              if (usable[j] && step_full[j] != 0) jac.col(j) += col * step_full[j];
            }
          }
          // A poor model of the decrease: difference the Jacobian next time.
          if (rho < 0.25 || attempt > 0) broyden_left = 0;
        }
        x = xt;
        s = st;
        r.swap(trial);
        accepted = true;
      } else if (!std::isfinite(st) && !narrowed) {
        // Infeasible step (e.g. across a nonlinear constraint the point sits
        // on): hold, for this iteration, the parameters whose own move is
        // infeasible, and solve again for the others.
        narrowed = true;
        std::vector<int> movable;
        for (int p = 0; p < kf; ++p) {
          const int j = free[p];
          std::vector<double> xj = x;
          xj[j] = xt[j];
          if (std::isfinite(eval(xj, col))) movable.push_back(j);
        }
        if (movable.size() == free.size()) {
          lambda *= nu;
          nu *= 2;
        }
        free.swap(movable);
      } else {
        lambda *= nu;
        nu *= 2;
      }
    }
    if (!accepted || converged || small_gains >= 2) {
      // Stop only on a differenced Jacobian.
      if (!exact) {
        broyden_left = 0;
        small_gains = 0;
        continue;
      }
      break;
    }
    // Crawling (many accepted steps, each just above ftol): stop when the
    // last `stall_window` iterations together gained less than stall_ftol.
    history.push_back(s);
    const int w = options.stall_window;
    if (w > 0 && static_cast<int>(history.size()) > w &&
        history[history.size() - 1 - w] - s <= options.stall_ftol * s) {
      break;
    }
  }
  out.x = x;
  out.sum_squares = s;
  return out;
}

}  // namespace ppe::forecast
