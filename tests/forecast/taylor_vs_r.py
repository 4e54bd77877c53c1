#!/usr/bin/python3
"""Multi-seasonal accuracy on a real series: ppe-forecast against R's stlf/mstl.

The series is forecast::taylor, half-hourly electricity demand in England and
Wales over 12 weeks (tests/data/taylor-half-hourly.csv.xz), with a daily (48)
and a weekly (336) cycle. Forecasts are made from 8 origins: day-ahead
(h = 48) from the start of each of the last 7 days, and week-ahead (h = 336)
from the start of the last week; each origin fits on everything before it.

  R:    stlf(msts(x, c(48, 336)), h, method = "ets")    (= forecast(mstl(x)))
        stlf(msts(x, c(48, 336)), h, method = "arima")
  ours: ppe-forecast --period 48 --period 336 --model stl | auto | auto --no-arima
        --snaive-every-period (the scaler's configuration) | auto --holdout 48 (the
        default before the whole-week hold-out) | auto --decomposition both | auto with
        the mean of the best 3 within 1.5 (before the median) | | --decomposition
        classical --snaive-smallest, mean of 3 (before STL) |
        decomp (the classical decomposition alone) | snaive

MASE is scaled by the in-sample weekly seasonal naive error (m = 336, the
frequency R's accuracy() uses for this msts) and averaged over the origins.
Exit status 1 if the automatic forecaster's mean MASE is worse than R's
stlf (ETS) (--gate), 77 if Rscript or the forecast package is missing.

  tests/forecast/taylor_vs_r.py --cli build/ppe-service/forecast/ppe-forecast [--gate]
"""
import argparse
import json
import lzma
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "taylor-half-hourly.csv.xz")
PERIODS = (48, 336)
M = 336

R_CODE = r"""
suppressMessages(library(forecast))
a <- commandArgs(trailingOnly = TRUE)
x <- scan(a[1], quiet = TRUE)
origins <- as.integer(strsplit(a[2], ",")[[1]])
hs <- as.integer(strsplit(a[3], ",")[[1]])
# Per origin four lines: ETS method, its forecasts, ARIMA method, its forecasts.
for (i in seq_along(origins)) {
  y <- msts(x[seq_len(origins[i])], seasonal.periods = c(48, 336))
  for (m in c("ets", "arima")) {
    f <- stlf(y, h = hs[i], method = m)
    cat(f$method, "\n", paste(formatC(as.numeric(f$mean), digits = 17, format = "g"),
                              collapse = ","), "\n", sep = "")
  }
}
"""


def mase(insample, actual, forecast, m=M):
    x = np.asarray(insample, dtype=float)
    scale = np.mean(np.abs(x[m:] - x[:-m]))
    return float(np.mean(np.abs(np.asarray(actual) - np.asarray(forecast))) / scale)


def run_cli(cli, y, args):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join("%.17g" % v for v in y) + "\n")
        path = f.name
    try:
        out = subprocess.run([cli, path] + args, check=True, capture_output=True, text=True)
    finally:
        os.unlink(path)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True, help="path of the ppe-forecast binary")
    ap.add_argument("--rscript", default="/usr/bin/Rscript")
    ap.add_argument("--gate", action="store_true",
                    help="fail if auto's mean MASE is worse than R's stlf (ETS)")
    args = ap.parse_args()
    if not os.access(args.rscript, os.X_OK):
        print("SKIPPED: %s not found (install R and r-cran-forecast)" % args.rscript)
        return 77
    with lzma.open(DATA, "rt") as f:
        lines = f.read().split()
    x = np.array([float(v) for v in lines[1:]])
    n = len(x)
    origins = [n - 336 + 48 * d for d in range(7)] + [n - 336]
    hs = [48] * 7 + [336]

    with tempfile.TemporaryDirectory() as tmp:
        series = os.path.join(tmp, "x.txt")
        script = os.path.join(tmp, "r.R")
        np.savetxt(series, x, fmt="%.17g")
        with open(script, "w") as f:
            f.write(R_CODE)
        r = subprocess.run([args.rscript, "--vanilla", script, series,
                            ",".join(map(str, origins)), ",".join(map(str, hs))],
                           capture_output=True, text=True)
        if r.returncode != 0:
            if "forecast" in r.stderr and "there is no package" in r.stderr:
                print("SKIPPED: R's forecast package is not installed")
                return 77
            sys.stderr.write(r.stderr)
            return 1
        out = r.stdout.strip().split("\n")
        ref = []
        for i in range(len(origins)):
            block = out[4 * i:4 * i + 4]
            ref.append({"ets_method": block[0], "ets": [float(v) for v in block[1].split(",")],
                        "arima_method": block[2],
                        "arima": [float(v) for v in block[3].split(",")]})

    ours = {
        "ppe stl": ["--model", "stl"],
        "ppe auto": ["--model", "auto"],
        "ppe auto --no-arima (scaler)": ["--model", "auto", "--no-arima",
                                         "--snaive-every-period"],
        "ppe auto, 1-day hold-out": ["--model", "auto", "--holdout", "48"],
        "ppe auto, both decomp.": ["--model", "auto", "--decomposition", "both"],
        "ppe auto before the median": ["--model", "auto", "--combine", "3",
                                       "--combine-within", "1.5", "--combine-mean"],
        "ppe auto before STL": ["--model", "auto", "--decomposition", "classical",
                                "--snaive-smallest", "--combine", "3", "--combine-within", "1.5",
                                "--combine-mean"],
        "ppe decomp (classical)": ["--model", "decomp"],
        "ppe snaive": ["--model", "snaive"],
    }
    period_args = sum((["--period", str(p)] for p in PERIODS), [])
    scores = {"R stlf ets": [], "R stlf arima": []}
    scores.update({k: [] for k in ours})
    models = {k: [] for k in ours}
    for i, (o, h) in enumerate(zip(origins, hs)):
        train, test = x[:o], x[o:o + h]
        scores["R stlf ets"].append(mase(train, test, ref[i]["ets"]))
        scores["R stlf arima"].append(mase(train, test, ref[i]["arima"]))
        for name, extra in ours.items():
            res = run_cli(args.cli, train, period_args + ["--horizon", str(h)] + extra)
            scores[name].append(mase(train, test, res["mean"]))
            models[name].append(res["model"])
        print("origin %d (h=%d): R %s %.3f | R %s %.3f | %s" % (
            o, h, ref[i]["ets_method"], scores["R stlf ets"][-1], ref[i]["arima_method"],
            scores["R stlf arima"][-1],
            " | ".join("%s %.3f" % (k, scores[k][-1]) for k in ours)))
    print()
    print("%-30s %10s %10s %10s" % ("method", "day-ahead", "week-ahead", "all 8"))
    for name, s in scores.items():
        print("%-30s %10.3f %10.3f %10.3f" % (name, np.mean(s[:7]), s[7], np.mean(s)))
    print()
    print("ppe auto picked: %s" % "; ".join(sorted(set(models["ppe auto"]))))
    print("scaler config picked: %s" % "; ".join(sorted(set(models["ppe auto --no-arima (scaler)"]))))
    auto = np.mean(scores["ppe auto"])
    r_ets = np.mean(scores["R stlf ets"])
    ok = auto <= r_ets
    print("goal: auto mean MASE %.3f <= R stlf(ets) %.3f: %s" % (auto, r_ets,
                                                             "met" if ok else "NOT met"))
    return 0 if ok or not args.gate else 1


if __name__ == "__main__":
    sys.exit(main())
