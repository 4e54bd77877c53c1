// ppe-forecast: fits a forecasting model to one series and prints JSON.
//
//   ppe-forecast [FILE|-] --period 24 [--period 168] --horizon 48
//                [--model auto|ets|arima|decomp|snaive|naive] [--level 95]
//                [--ets-spec MAdA] [--no-arima]
//   Checking against R (fixed parameters, no estimation):
//   ppe-forecast FILE --model ets --ets-spec MAdA --period 24 --alpha A --beta B
//                --gamma G --phi P --init l,b,s0,...,s23 [--states]
//
// Input: one number per line, or `timestamp,count` CSV (header allowed).

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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
    "                    [--model auto|ets|arima|decomp|snaive|naive] [--ets-spec CODE]\n"
    "                    [--arima-order p,d,q,P,D,Q[,1]] [--no-arima]\n"
    "                    [--combine K] [--combine-within R]\n"
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

absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  bool have_path = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto next = [&]() -> absl::StatusOr<std::string> {
      if (!value.empty()) return value;
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(arg, " needs a value"));
      return std::string(argv[++i]);
    };
    auto number = [&](double* out) -> absl::Status {
      auto v = next();
      if (!v.ok()) return v.status();
      if (!absl::SimpleAtod(*v, out)) {
        return absl::InvalidArgumentError(absl::StrCat(arg, ": not a number: ", *v));
      }
      return absl::OkStatus();
    };
    double x;
    absl::Status st;
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--period") {
      st = number(&x);
      if (st.ok() && (x < 1 || x != static_cast<int>(x))) {
        st = absl::InvalidArgumentError("--period must be a positive integer");
      }
      a.fit.periods.push_back(static_cast<int>(x));
    } else if (arg == "--horizon") {
      st = number(&x);
      if (st.ok() && (x < 1 || x != static_cast<int>(x))) {
        st = absl::InvalidArgumentError("--horizon must be a positive integer");
      }
      a.horizon = static_cast<int>(x);
    } else if (arg == "--level") {
      st = number(&a.level);
      if (st.ok() && !(a.level > 0 && a.level < 100)) {
        st = absl::InvalidArgumentError("--level must be in (0, 100)");
      }
    } else if (arg == "--model") {
      auto v = next();
      if (!v.ok()) return v.status();
      auto fam = ppe::forecast::ParseModelFamily(*v);
      if (!fam.ok()) return fam.status();
      a.fit.family = *fam;
    } else if (arg == "--ets-spec") {
      auto v = next();
      if (!v.ok()) return v.status();
      a.fit.ets_spec = *v;
    } else if (arg == "--arima-order") {
      auto v = next();
      if (!v.ok()) return v.status();
      for (absl::string_view f : absl::StrSplit(*v, ',')) {
        int d;
        if (!absl::SimpleAtoi(f, &d) || d < 0) {
          return absl::InvalidArgumentError("--arima-order: expected p,d,q,P,D,Q[,constant]");
        }
        a.fit.arima_order.push_back(d);
      }
    } else if (arg == "--combine") {
      st = number(&x);
      if (st.ok() && (x < 1 || x != static_cast<int>(x))) {
        st = absl::InvalidArgumentError("--combine must be a positive integer");
      }
      a.fit.combine = static_cast<int>(x);
    } else if (arg == "--combine-within") {
      st = number(&a.fit.combine_within);
      if (st.ok() && !(a.fit.combine_within >= 1 || a.fit.combine_within == 0)) {
        st = absl::InvalidArgumentError("--combine-within must be 0 (no limit) or at least 1");
      }
    } else if (arg == "--no-arima") {
      a.fit.include_arima = false;
    } else if (arg == "--states") {
      a.states = true;
    } else if (arg == "--alpha") {
      st = number(&a.params.alpha);
      a.fixed = true;
    } else if (arg == "--beta") {
      st = number(&a.params.beta);
    } else if (arg == "--gamma") {
      st = number(&a.params.gamma);
    } else if (arg == "--phi") {
      st = number(&a.params.phi);
    } else if (arg == "--init") {
      auto v = next();
      if (!v.ok()) return v.status();
      for (absl::string_view f : absl::StrSplit(*v, ',')) {
        double d;
        if (!absl::SimpleAtod(f, &d)) return absl::InvalidArgumentError("--init: bad number");
        a.init.push_back(d);
      }
    } else if (arg.rfind("--", 0) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", arg));
    } else if (!have_path) {
      a.path = arg;
      have_path = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", arg));
    }
    if (!st.ok()) return st;
  }
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
