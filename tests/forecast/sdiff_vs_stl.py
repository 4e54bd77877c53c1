#!/usr/bin/python3
"""Seasonal differencing of our automatic ARIMA against R's STL strength test.

  sdiff_vs_stl.py --cli PPE_FORECAST

For every M4 hourly series: the seasonal strength max(0, 1 - var(R) / var(S + R))
of an STL decomposition (statsmodels' STL, period 24, seasonal window 11, as
R's mstl inside nsdiffs(test = "seas")), and the D that our automatic ARIMA
chose. Prints the series where D = 1 and strength > 0.64 disagree.
"""
import argparse
import os
import re
import sys

import numpy as np
from statsmodels.tsa.seasonal import STL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_with_r as c  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    args = ap.parse_args()
    train = c.read_m4("m4-hourly-train.csv.xz")
    ids = sorted(train, key=lambda s: int(s[1:]))
    disagree = []
    for sid in ids:
        x = np.array(train[sid])
        r = STL(x, period=c.FREQ, seasonal=11).fit()
        strength = max(0.0, 1 - np.var(r.resid) / np.var(r.resid + r.seasonal))
        model = c.run_cli(args.cli, x, ["--model", "arima", "--period", str(c.FREQ),
                                        "--horizon", "1"])["model"]
        m = re.search(r"\)\((\d+),(\d+),(\d+)\)\[%d\]" % c.FREQ, model)
        sd = int(m.group(2)) if m else 0
        if (strength > 0.64) != (sd == 1):
            disagree.append(sid)
            print("%-5s STL strength %.3f, ours %s" % (sid, strength, model), flush=True)
    print("D disagrees with the STL strength test on %d of %d series" % (len(disagree), len(ids)))


if __name__ == "__main__":
    main()
