#!/usr/bin/python3
"""Held-out accuracy of ppe-forecast configurations on the M4 hourly series (h = 48).

  config_sweep.py --cli PPE_FORECAST [--half first|second] NAME="ARGS" ...

Each NAME="ARGS" is one configuration: the ppe-forecast arguments (besides
--horizon 48), run once per series. Prints sMAPE, MASE and OWA (against
Naive2 on the same series) for each. --half first takes H1, H3, H5, ...,
--half second H2, H4, H6, ... (choose on one half, check on the other);
default all 414. docs/forecasting.md ("Automatic selection") used it to choose
FitOptions::combine_within.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_with_r as c  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--half", choices=["first", "second"])
    ap.add_argument("configs", nargs="+", help='NAME="ppe-forecast arguments"')
    args = ap.parse_args()
    configs = {}
    for a in args.configs:
        name, _, rest = a.partition("=")
        configs[name] = rest.split()
    train, test = c.read_m4("m4-hourly-train.csv.xz"), c.read_m4("m4-hourly-test.csv.xz")
    ids = sorted(train, key=lambda s: int(s[1:]))
    if args.half:
        ids = ids[(0 if args.half == "first" else 1)::2]
    n2 = {s: c.naive2(train[s]) for s in ids}
    n2s = np.mean([c.smape(test[s], n2[s]) for s in ids])
    n2m = np.mean([c.mase(train[s], test[s], n2[s]) for s in ids])
    for name, cli_args in configs.items():
        sm, ms, secs = [], [], []
        for sid in ids:
            r = c.run_cli(args.cli, train[sid], cli_args + ["--horizon", str(c.H)])
            sm.append(c.smape(test[sid], r["mean"]))
            ms.append(c.mase(train[sid], test[sid], r["mean"]))
            secs.append(r["seconds"])
        s, m = float(np.mean(sm)), float(np.mean(ms))
        print("%-24s series %d sMAPE %.3f MASE %.3f OWA %.3f median wall s %.3f" % (
            name, len(ids), s, m, c.owa(s, m, n2s, n2m), float(np.median(secs))), flush=True)


if __name__ == "__main__":
    main()
