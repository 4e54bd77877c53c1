#pragma once

// Small numerical helpers: normal quantile, accuracy measures (M4 definitions).

#include <span>

namespace ppe::forecast {

// Quantile function of the standard normal distribution, 0 < p < 1.
double NormalQuantile(double p);

// Symmetric MAPE in percent, M4 definition: mean(200 |y - f| / (|y| + |f|)).
double Smape(std::span<const double> actual, std::span<const double> forecast);

// Mean absolute scaled error against the in-sample seasonal naive forecast of
// period `m` (m = 1: naive). Returns NaN when the scale is zero.
double Mase(std::span<const double> insample, std::span<const double> actual,
            std::span<const double> forecast, int m);

}  // namespace ppe::forecast
