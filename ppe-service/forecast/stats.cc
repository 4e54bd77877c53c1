#include "ppe-service/forecast/stats.h"

#include <cmath>
#include <limits>
#include <vector>

namespace ppe::forecast {

double NormalQuantile(double p) {
  if (p <= 0.0) return -std::numeric_limits<double>::infinity();
  if (p >= 1.0) return std::numeric_limits<double>::infinity();
  // Rational approximation (Acklam) followed by one Halley step on erfc.
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                 -2.759285104469687e+02, 1.383577518672690e+02,
                                 -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                 -1.556989798598866e+02, 6.680131188771972e+01,
                                 -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                 -2.400758277161838e+00, -2.549732539343734e+00,
                                 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                                 2.445134137142996e+00, 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  double x;
  if (p < kLow) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - kLow) {
    const double q = p - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

double Smape(std::span<const double> actual, std::span<const double> forecast) {
  double sum = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double den = std::fabs(actual[i]) + std::fabs(forecast[i]);
    if (den > 0) sum += 200.0 * std::fabs(actual[i] - forecast[i]) / den;
  }
  return actual.empty() ? std::numeric_limits<double>::quiet_NaN()
                        : sum / static_cast<double>(actual.size());
}

double Mase(std::span<const double> insample, std::span<const double> actual,
            std::span<const double> forecast, int m) {
  if (m < 1 || insample.size() <= static_cast<size_t>(m)) m = 1;
  double scale = 0;
  for (size_t i = m; i < insample.size(); ++i) {
    scale += std::fabs(insample[i] - insample[i - m]);
  }
  scale /= static_cast<double>(insample.size() - m);
  double err = 0;
  for (size_t i = 0; i < actual.size(); ++i) err += std::fabs(actual[i] - forecast[i]);
  err /= static_cast<double>(actual.size());
  if (!(scale > 0)) return std::numeric_limits<double>::quiet_NaN();
  return err / scale;
}

bool RootsOutside(std::span<const double> c, double radius) {
  int k = static_cast<int>(c.size());
  while (k > 0 && c[k - 1] == 0) --k;
  if (k == 0) return true;
  // The reversed polynomial scaled by r, z^k + c1 r z^(k-1) + ... + ck r^k, has
  // the inverse roots times r as its roots: all inside the unit disc iff all
  // roots of the original lie outside radius r.
  std::vector<double> poly(k + 1);  // Increasing powers.
  poly[k] = 1;
  double scale = 1;
  for (int j = 1; j <= k; ++j) {
    scale *= radius;
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

double Autocorrelation(std::span<const double> y, int lag) {
  const size_t n = y.size();
  if (lag < 1 || static_cast<size_t>(lag) >= n) return 0;
  double mean = 0;
  for (double v : y) mean += v;
  mean /= static_cast<double>(n);
  double var = 0, cov = 0;
  for (size_t t = 0; t < n; ++t) {
    var += (y[t] - mean) * (y[t] - mean);
    if (t + lag < n) cov += (y[t] - mean) * (y[t + lag] - mean);
  }
  return var > 0 ? cov / var : 0;
}

int ShortestCycle(std::span<const double> y, std::span<const int> candidates) {
  int best = 0;
  for (int p : candidates) {
    if (p < 4 || y.size() < 4 * static_cast<size_t>(p) || (best != 0 && p >= best)) continue;
    const double at = Autocorrelation(y, p);
    if (at >= 0.5 && at - Autocorrelation(y, p / 2) >= 0.3) best = p;
  }
  return best;
}

}  // namespace ppe::forecast
