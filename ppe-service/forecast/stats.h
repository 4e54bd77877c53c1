#pragma once

// Small numerical helpers: normal quantile, accuracy measures (M4 definitions),
// a polynomial root test.

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

// True if every root of 1 + c1 z + ... + ck z^k has modulus above `radius`
// (Schur-Cohn test on the reversed polynomial; k = 0: true). ARIMA: radius 1
// for stationarity or invertibility, 1.01 to reject near-unit roots as R does.
bool RootsOutside(std::span<const double> c, double radius);

// Sample autocorrelation of `y` at `lag` (0 for a constant series or a lag
// outside 1..size-1).
double Autocorrelation(std::span<const double> y, int lag);

// The shortest of `candidates` (periods in buckets, each at least 4) at which
// `y` repeats, or 0: with four cycles of it in `y`, an autocorrelation of at
// least 0.5 at that lag and 0.3 above the one at half of it. The second test
// tells a cycle from smoothness: a smooth series's autocorrelation only decays
// with the lag, so it is no higher at a whole candidate than at half of it.
int ShortestCycle(std::span<const double> y, std::span<const int> candidates);

}  // namespace ppe::forecast
