#include "ppe-service/forecast/optimizer.h"

#include <nlopt.h>

#include <cmath>
#include <limits>

namespace ppe::forecast {
namespace {

struct Context {
  const std::function<double(std::span<const double>)>* f;
  std::vector<double> best_x;
  double best = std::numeric_limits<double>::infinity();
  int evaluations = 0;
};

double Trampoline(unsigned n, const double* x, double* /*grad*/, void* data) {
  auto* ctx = static_cast<Context*>(data);
  ++ctx->evaluations;
  double v = (*ctx->f)(std::span<const double>(x, n));
  if (!std::isfinite(v)) v = 1e300;
  if (v < ctx->best) {
    ctx->best = v;
    ctx->best_x.assign(x, x + n);
  }
  return v;
}

}  // namespace

MinimizeResult Minimize(const std::function<double(std::span<const double>)>& f,
                        std::vector<double> x0, const MinimizeOptions& options) {
  const unsigned n = static_cast<unsigned>(x0.size());
  Context ctx{&f, x0, std::numeric_limits<double>::infinity(), 0};
  ctx.best = f(x0);
  ctx.evaluations = 1;
  if (!std::isfinite(ctx.best)) ctx.best = 1e300;
  if (n == 0) return {x0, ctx.best, 1};
  nlopt_opt opt = nlopt_create(options.bobyqa ? NLOPT_LN_BOBYQA : NLOPT_LN_NELDERMEAD, n);
  if (!options.lower.empty()) nlopt_set_lower_bounds(opt, options.lower.data());
  if (!options.upper.empty()) nlopt_set_upper_bounds(opt, options.upper.data());
  if (!options.initial_step.empty()) nlopt_set_initial_step(opt, options.initial_step.data());
  nlopt_set_min_objective(opt, &Trampoline, &ctx);
  nlopt_set_maxeval(opt, options.max_evaluations);
  nlopt_set_ftol_rel(opt, options.ftol_rel);
  nlopt_set_xtol_rel(opt, options.xtol_rel);
  double value = 0;
  nlopt_optimize(opt, x0.data(), &value);  // Result code ignored: best point kept.
  nlopt_destroy(opt);
  return {ctx.best_x, ctx.best, ctx.evaluations};
}

}  // namespace ppe::forecast
