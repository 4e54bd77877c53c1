// ppe-forecast: fits a forecasting model to one series and prints JSON.
//
//   ppe-forecast [FILE|-] --period 24 [--period 168] --horizon 48
//                [--model auto|ets|arima|decomp|stl|snaive|naive] [--level 95]
//                [--ets-spec MAdA] [--no-arima]
//   Checking against R (fixed parameters, no estimation):
//   ppe-forecast FILE --model ets --ets-spec MAdA --period 24 --alpha A --beta B
//                --gamma G --phi P --init l,b,s0,...,s23 [--states]
//
// Input: one number per line, or `timestamp,count` CSV (header allowed).

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ppe-service/common/flags.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/forecast/ets.h"
#include "ppe-service/forecast/forecaster.h"
#include "ppe-service/forecast/json_report.h"
#include "ppe-service/forecast/series_io.h"

namespace {

using ppe::forecast::EtsModel;
using ppe::forecast::EtsParameters;
using ppe::forecast::EtsSpec;
using ppe::forecast::FitOptions;

constexpr char kUsage[] =
    "usage: ppe-forecast [FILE|-] [--period M]... [--horizon H] [--level 95]\n"
    "                    [--model auto|ets|arima|decomp|stl|snaive|naive] [--ets-spec CODE]\n"
    "                    [--arima-order p,d,q,P,D,Q[,1]] [--no-arima]\n"
    "                    [--combine K] [--combine-within R] [--combine-mean] [--holdout N]\n"
    "                    [--decomposition stl|classical|both]\n"
    "                    [--snaive-smallest|--snaive-longest|--snaive-every-period]\n"
    "                    [--alpha A --beta B --gamma G --phi P --init x,y,...]\n"
    "                    [--states]\n";

int Fail(int code, const std::string& message) {
  std::cerr << "ppe-forecast: error: " << message << "\n";
  if (code == 2) std::cerr << kUsage;
  return code;
}

struct Args {
  std::string path = "-";
  FitOptions fit;
  int horizon = 0;
  double level = 95;
  bool fixed = false;
  EtsParameters params;
  std::vector<double> init;
  bool states = false;
};

// A setter for a flag that must be a whole number >= 1.
ppe::FlagParser::Setter PositiveInt(const std::string& flag, std::function<void(int)> set) {
  return [flag, set = std::move(set)](absl::string_view v) {
    double x;
    if (absl::Status s = ppe::FlagParser::ToDouble(flag, v, &x); !s.ok()) return s;
    if (x < 1 || x != static_cast<int>(x)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be a positive integer"));
    }
    set(static_cast<int>(x));
    return absl::OkStatus();
  };
}

// A setter for a comma-separated list of numbers.
template <typename T>
ppe::FlagParser::Setter NumberList(std::vector<T>* out,
                                   std::function<bool(absl::string_view, T*)> parse,
                                   std::string error) {
  return [out, parse = std::move(parse), error = std::move(error)](absl::string_view v) {
    for (absl::string_view f : absl::StrSplit(v, ',')) {
      T x;
      if (!parse(f, &x)) return absl::InvalidArgumentError(error);
      out->push_back(x);
    }
    return absl::OkStatus();
  };
}

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  bool have_path = false;
  ppe::FlagParser flags;
  flags.Custom("period", PositiveInt("period", [&a](int p) { a.fit.periods.push_back(p); }));
  flags.Custom("horizon", PositiveInt("horizon", [&a](int h) { a.horizon = h; }));
  flags.Custom("level", [&a](absl::string_view v) {
    if (absl::Status s = ppe::FlagParser::ToDouble("level", v, &a.level); !s.ok()) return s;
    if (!(a.level > 0 && a.level < 100)) {
      return absl::InvalidArgumentError("--level must be in (0, 100)");
    }
    return absl::OkStatus();
  });
  flags.Custom("model", [&a](absl::string_view v) {
    PPE_ASSIGN_OR_RETURN(auto family, ppe::forecast::ParseModelFamily(std::string(v)));
    a.fit.family = family;
    return absl::OkStatus();
  });
  flags.String("ets-spec", &a.fit.ets_spec);
  flags.Custom("arima-order",
               NumberList<int>(
                   &a.fit.arima_order,
                   [](absl::string_view f, int* d) { return absl::SimpleAtoi(f, d) && *d >= 0; },
                   "--arima-order: expected p,d,q,P,D,Q[,constant]"));
  flags.Custom("combine", PositiveInt("combine", [&a](int k) { a.fit.combine = k; }));
  flags.Custom("holdout", PositiveInt("holdout", [&a](int k) { a.fit.holdout = k; }));
  flags.Custom("combine-within", [&a](absl::string_view v) {
    double& r = a.fit.combine_within;
    if (absl::Status s = ppe::FlagParser::ToDouble("combine-within", v, &r); !s.ok()) return s;
    if (!(r >= 1 || r == 0)) {
      return absl::InvalidArgumentError("--combine-within must be 0 (no limit) or at least 1");
    }
    return absl::OkStatus();
  });
  flags.Custom("decomposition", [&a](absl::string_view v) {
    if (v == "stl") {
      a.fit.decomposition = ppe::forecast::Decomposition::kStl;
    } else if (v == "classical") {
      a.fit.decomposition = ppe::forecast::Decomposition::kClassical;
    } else if (v == "both") {
      a.fit.decomposition = ppe::forecast::Decomposition::kBoth;
    } else {
      return absl::InvalidArgumentError("--decomposition: expected stl, classical or both");
    }
    return absl::OkStatus();
  });
  bool no_arima = false;
  flags.Switch("no-arima", &no_arima);
  bool snaive_smallest = false;
  flags.Switch("snaive-smallest", &snaive_smallest);
  bool snaive_longest = false;
  flags.Switch("snaive-longest", &snaive_longest);
  bool snaive_every = false;
  flags.Switch("snaive-every-period", &snaive_every);
  bool combine_mean = false;
  flags.Switch("combine-mean", &combine_mean);
  flags.Switch("states", &a.states);
  flags.Custom("alpha", [&a](absl::string_view v) {
    a.fixed = true;
    return ppe::FlagParser::ToDouble("alpha", v, &a.params.alpha);
  });
  flags.Double("beta", &a.params.beta);
  flags.Double("gamma", &a.params.gamma);
  flags.Double("phi", &a.params.phi);
  flags.Custom("init",
               NumberList<double>(
                   &a.init, [](absl::string_view f, double* d) { return absl::SimpleAtod(f, d); },
                   "--init: bad number"));
  flags.Positionals([&](absl::string_view arg) {
    if (have_path) return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", arg));
    a.path = std::string(arg);
    have_path = true;
    return absl::OkStatus();
  });
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) return s;
  if (no_arima) a.fit.include_arima = false;
  if (snaive_smallest) a.fit.snaive = ppe::forecast::SeasonalNaiveCandidates::kSmallest;
  if (snaive_longest) a.fit.snaive = ppe::forecast::SeasonalNaiveCandidates::kLongest;
  if (snaive_every) a.fit.snaive = ppe::forecast::SeasonalNaiveCandidates::kEveryPeriod;
  if (combine_mean) a.fit.combine_median = false;
  if (a.horizon == 0) {
    int m = 1;
    for (int p : a.fit.periods) m = std::max(m, p);
    a.horizon = m > 1 ? 2 * m : 10;
  }
  if (a.fixed && (a.fit.family != ppe::forecast::ModelFamily::kEts || a.fit.ets_spec.empty() ||
                  a.init.empty())) {
    return absl::InvalidArgumentError("fixed parameters need --model ets, --ets-spec and --init");
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::cout << kUsage;
      return 0;
    }
  }
  auto args = ParseArgs(argc, argv);
  if (!args.ok()) return Fail(2, std::string(args.status().message()));
  std::stringstream buffer;
  if (args->path == "-") {
    buffer << std::cin.rdbuf();
  } else {
    std::ifstream in(args->path);
    if (!in) return Fail(2, absl::StrCat("cannot read ", args->path));
    buffer << in.rdbuf();
  }
  auto y = ppe::forecast::ParseSeries(buffer.str());
  if (!y.ok()) return Fail(2, std::string(y.status().message()));

  std::vector<std::string> extra;
  std::unique_ptr<ppe::forecast::Model> model;
  if (args->fixed) {
    int period = 1;
    for (int p : args->fit.periods) period = p;
    auto spec = EtsSpec::Parse(args->fit.ets_spec, period);
    if (!spec.ok()) return Fail(2, std::string(spec.status().message()));
    auto filled = ppe::forecast::FillMissing(*y);
    if (!filled.ok()) return Fail(2, std::string(filled.status().message()));
    auto m = EtsModel::FromParameters(*filled, *spec, args->params, args->init,
                                      static_cast<int>(args->init.size()));
    if (!m.ok()) return Fail(2, std::string(m.status().message()));
    extra.push_back(absl::StrCat("\"final_state\": ", ppe::forecast::JsonArray((*m)->State())));
    if (args->states) {
      auto run = ppe::forecast::EtsFilter(*spec, (*m)->params(), args->init, *filled, true);
      std::vector<std::string> rows;
      for (const auto& s : run->states) rows.push_back(ppe::forecast::JsonArray(s));
      extra.push_back(absl::StrCat("\"states\": [", absl::StrJoin(rows, ", "), "]"));
    }
    model = std::move(*m);
  } else {
    if (y->size() < 3) {
      return Fail(2, absl::StrCat("series too short: ", y->size(), " values (need >= 3)"));
    }
    auto m = ppe::forecast::Fit(*y, args->fit);
    if (!m.ok()) return Fail(1, std::string(m.status().message()));
    model = std::move(*m);
  }
  auto forecast = model->Predict(args->horizon, args->level);
  if (!forecast.ok()) return Fail(1, std::string(forecast.status().message()));
  std::cout << ppe::forecast::ModelReportJson(*model, *forecast, static_cast<int>(y->size()),
                                              extra);
  return 0;
}
