#!/usr/bin/python3
"""What the additive trend of a fitted ETS(M,A,M) does on an M4 hourly series.

For each series: our ML fit of ETS(M,A,M) and ETS(M,N,M); the filtered states at
our estimates (ppe-forecast --states); the level at the start and the end, the
sum of the trend states over the history, the mean of b / l, and the mean ratio
of successive deseasonalised values less 1 (what a one-step correction on a
random-walk level can buy). See docs/forecasting.md, "Why a better likelihood
forecasts worse here".

  ets_trend_states.py --cli build/ppe-service/forecast/ppe-forecast H363 H129 ...
"""
import argparse
import json
import subprocess
import tempfile

import numpy as np

import compare_with_r as common


def run(cli, path, args):
    out = subprocess.run([cli, path, "--period", "24", "--horizon", "48", "--model", "ets"] + args,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("series", nargs="+")
    args = ap.parse_args()
    train = common.read_m4("m4-hourly-train.csv.xz")
    print("| series | alpha | beta | level at start -> end | sum of b | mean b / l "
          "| mean ratio - 1 | loglik M,A,M | loglik M,N,M |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sid in args.series:
        y = np.asarray(train[sid])
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            f.write("\n".join("%.17g" % v for v in y) + "\n")
            f.flush()
            mam = run(args.cli, f.name, ["--ets-spec", "MAM"])
            mnm = run(args.cli, f.name, ["--ets-spec", "MNM"])
            p = mam["parameters"]
            init = [p["l0"], p["b0"]] + [p["s%d" % i] for i in range(24)]
            fixed = run(args.cli, f.name, [
                "--ets-spec", "MAM", "--alpha", repr(p["alpha"]), "--beta", repr(p["beta"]),
                "--gamma", repr(p["gamma"]), "--init", ",".join(repr(v) for v in init), "--states"])
        st = np.asarray(fixed["states"])  # row t: state after t observations: l, b, s_1..s_24
        level, trend = st[:, 0], st[:, 1]
        season = st[:-1, -1]  # the seasonal index each observation was forecast with
        x = y / season
        ratio = x[1:] / x[:-1]
        print("| %s | %.4f | %.5f | %.0f -> %.0f | %+.0f | %.3f | %.3f | %.1f | %.1f |" % (
            sid, p["alpha"], p["beta"], level[0], level[-1], trend[:-1].sum(),
            np.mean(trend[:-1] / level[:-1]), ratio.mean() - 1, mam["loglik"], mnm["loglik"]))


if __name__ == "__main__":
    main()
