#pragma once

// JSON rendering of a fitted model and its forecast (used by ppe-forecast).

#include <string>
#include <vector>

#include "ppe-service/forecast/model.h"

namespace ppe::forecast {

// {"model": ..., "family": ..., "parameters": {...}, "loglik": ..., "aicc": ...,
//  "sigma2": ..., "level": ..., "mean": [...], "lower": [...], "upper": [...]}
// plus `extra` members (already rendered "key": value pairs). Non-finite
// numbers are rendered as null.
std::string ModelReportJson(const Model& model, const Forecast& forecast, int nobs,
                            const std::vector<std::string>& extra = {});

std::string JsonNumber(double v);
std::string JsonArray(const std::vector<double>& v);
std::string JsonString(const std::string& s);

}  // namespace ppe::forecast
