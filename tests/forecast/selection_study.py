#!/usr/bin/python3
"""How the automatic forecaster should choose and combine families, on M4 hourly (h = 48).

  selection_study.py --cli PPE_FORECAST [--cache FILE] [--jobs 2] [--half first|second]

Step 1 (cached in --cache, JSON): for every series, every family the automatic
forecaster can pick (ets, arima, stl, decomp, snaive 168, snaive 24, naive) is
fitted by `ppe-forecast --model F` three times: on the whole training series
(the forecast that is scored) and without its last 48 and last 96 values (the
hold-out windows). Step 2 (instant): selection rules are replayed on those
forecasts, exactly as forecaster.cc's Fit applies them (hold-out MASE scaled
by the in-sample seasonal naive of period 24 on the shortened series, ties
kept in candidate order, the best `combine` within `within` times the best,
equal weights), and scored with sMAPE, MASE and OWA against the M4 test data.
The first rule reproduces `--model auto` (check with config_sweep.py).
"""
import argparse
import concurrent.futures
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_with_r as c  # noqa: E402

FAMILIES = {
    "ets": ["--model", "ets", "--period", "24", "--period", "168"],
    "stl": ["--model", "stl", "--period", "24", "--period", "168"],
    "decomp": ["--model", "decomp", "--period", "24", "--period", "168"],
    "arima": ["--model", "arima", "--period", "24", "--period", "168"],
    "snaive168": ["--model", "snaive", "--period", "168"],
    "snaive24": ["--model", "snaive", "--period", "24"],
    "naive": ["--model", "naive"],
}
ORIGINS = [0, 48, 96]  # values left off the end before fitting
# forecaster.cc's candidate order (ties in hold-out error keep it).
ORDER = ["ets", "stl", "decomp", "arima", "snaive168", "snaive24", "naive"]


def fit_one(cli, y, fam, cut):
    r = c.run_cli(cli, y[:len(y) - cut] if cut else y, FAMILIES[fam] + ["--horizon", str(c.H)])
    return r["mean"]


def collect(cli, train, ids, cache, jobs):
    done = {}
    if os.path.exists(cache):
        with open(cache) as f:
            done = json.load(f)
    todo = [(s, fam, o) for s in ids for fam in FAMILIES for o in ORIGINS
            if "%s/%s/%d" % (s, fam, o) not in done]
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        futs = {ex.submit(fit_one, cli, train[s], fam, o): "%s/%s/%d" % (s, fam, o)
                for s, fam, o in todo}
        for i, fut in enumerate(concurrent.futures.as_completed(futs)):
            try:
                done[futs[fut]] = fut.result()
            except Exception as e:  # a family that fails is not a candidate
                done[futs[fut]] = None
                print("failed", futs[fut], e, file=sys.stderr)
            if i % 500 == 499:
                with open(cache, "w") as f:
                    json.dump(done, f)
    with open(cache, "w") as f:
        json.dump(done, f)
    return done


def holdout_errors(y, fc, s, fams, origins):
    """Mean hold-out MASE per family over the given origins (None: failed)."""
    errs = {}
    for fam in fams:
        e = []
        for o in origins:
            f = fc.get("%s/%s/%d" % (s, fam, o))
            if f is None:
                e = None
                break
            tr, te = y[:len(y) - o], y[len(y) - o:len(y) - o + 48]
            e.append(c.mase(tr, te, np.asarray(f[:len(te)]), 24))
        if e is not None and all(np.isfinite(e)):
            errs[fam] = float(np.mean(e))
    return errs


def rule_forecast(y, fc, s, fams, origins, combine, within, how="mean"):
    errs = holdout_errors(y, fc, s, fams, origins)
    ranked = sorted(errs, key=lambda f: (errs[f], ORDER.index(f)))
    chosen = []
    for f in ranked:
        if len(chosen) == combine:
            break
        if within > 0 and chosen and errs[f] > within * errs[ranked[0]]:
            break
        chosen.append(f)
    if not chosen:
        chosen = ["naive"]
    fs = np.array([fc["%s/%s/0" % (s, f)] for f in chosen])
    if how == "median":
        return np.median(fs, axis=0), chosen
    if how == "inverse":
        w = np.array([1.0 / max(errs[f], 1e-9) for f in chosen])
        return (w[:, None] * fs).sum(0) / w.sum(), chosen
    return fs.mean(0), chosen


def score(ids, train, test, forecasts):
    n2 = {s: c.naive2(train[s]) for s in ids}
    n2s = np.mean([c.smape(test[s], n2[s]) for s in ids])
    n2m = np.mean([c.mase(train[s], test[s], n2[s]) for s in ids])
    sm = float(np.mean([c.smape(test[s], forecasts[s]) for s in ids]))
    ms = float(np.mean([c.mase(train[s], test[s], forecasts[s]) for s in ids]))
    return sm, ms, c.owa(sm, ms, n2s, n2m)


ALL = 99  # no limit on the number of members
RULES = {
    # name: (families, hold-out origins, combine, within, how)
    "auto before: mean of best 3 within 1.5": (["ets", "stl", "arima", "snaive168", "naive"], [48], 3, 1.5, "mean"),
    "scaler before": (["ets", "stl", "snaive168", "naive"], [48], 3, 1.5, "mean"),
    "auto now: median within 2": (["ets", "stl", "arima", "snaive168", "naive"], [48], ALL, 2.0, "median"),
    "scaler now: median within 2, snaive 24+168": (["ets", "stl", "snaive168", "snaive24", "naive"], [48], ALL, 2.0, "median"),
    "auto, median within 2, snaive 24+168": (["ets", "stl", "arima", "snaive168", "snaive24", "naive"], [48], ALL, 2.0, "median"),
    "scaler, median within 2, snaive 168": (["ets", "stl", "snaive168", "naive"], [48], ALL, 2.0, "median"),
    "auto, median within 1.5": (["ets", "stl", "arima", "snaive168", "naive"], [48], ALL, 1.5, "median"),
    "scaler, median within 1.5, snaive 24+168": (["ets", "stl", "snaive168", "snaive24", "naive"], [48], ALL, 1.5, "median"),
    "auto, mean within 2": (["ets", "stl", "arima", "snaive168", "naive"], [48], ALL, 2.0, "mean"),
    "scaler, mean within 2, snaive 24+168": (["ets", "stl", "snaive168", "snaive24", "naive"], [48], ALL, 2.0, "mean"),
    "auto, median of best 3 within 1.5": (["ets", "stl", "arima", "snaive168", "naive"], [48], 3, 1.5, "median"),
    "auto, median within 2, hold-out 48+96": (["ets", "stl", "arima", "snaive168", "naive"], [48, 96], ALL, 2.0, "median"),
    "scaler, median within 2, s24, 48+96": (["ets", "stl", "snaive168", "snaive24", "naive"], [48, 96], ALL, 2.0, "median"),
    "auto, median within 2, both decomps": (["ets", "stl", "decomp", "arima", "snaive168", "naive"], [48], ALL, 2.0, "median"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--cache", default="/tmp/selection_study.json")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--half", choices=["first", "second"], help="default: all 414")
    ap.add_argument("--rules", nargs="*", help="only these rule names")
    args = ap.parse_args()
    train, test = c.read_m4("m4-hourly-train.csv.xz"), c.read_m4("m4-hourly-test.csv.xz")
    ids = sorted(train, key=lambda s: int(s[1:]))
    if args.half:
        ids = ids[(0 if args.half == "first" else 1)::2]
    fc = collect(args.cli, train, ids, args.cache, args.jobs)
    for fam in ORDER:
        f = {s: np.asarray(fc["%s/%s/0" % (s, fam)]) for s in ids}
        print("%-44s sMAPE %.3f MASE %.3f OWA %.3f" % (("family " + fam,) + score(ids, train, test, f)))
    for name, (fams, origins, k, within, how) in RULES.items():
        if args.rules and name not in args.rules:
            continue
        f = {}
        for s in ids:
            f[s], _ = rule_forecast(np.asarray(train[s]), fc, s, fams, origins, k, within, how)
        print("%-44s sMAPE %.3f MASE %.3f OWA %.3f" % ((name,) + score(ids, train, test, f)))


if __name__ == "__main__":
    main()
