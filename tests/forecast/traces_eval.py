#!/usr/bin/python3
"""Rolling-origin check of ppe-forecast on the real request-rate traces.

WorldCup98 (requests per minute) and NASA-KSC (requests per second, summed to
minutes): at 8 origins 6 hours apart over the last two days, fit on the previous
14 days with periods 1440 and 10080 and forecast the next 60 minutes; compare
MASE (scaled by the in-sample daily seasonal naive) with seasonal naive (1440)
and naive, and report how often the upper 95% bound covers the actual count.

  traces_eval.py --cli build/ppe-service/forecast/ppe-forecast
"""
import argparse
import os
import subprocess
import tarfile
import tempfile
import time

import numpy as np

import compare_with_r as common

DATA = common.DATA  # tests/data/


def worldcup():
    text = subprocess.run(["xz", "-dc", os.path.join(DATA, "worldcup98-per-minute.csv.xz")],
                          check=True, capture_output=True, text=True).stdout
    return np.array([float(l.rsplit(",", 1)[1]) for l in text.splitlines()[1:] if l])


def nasa():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["tar", "xjf", os.path.join(DATA, "nasa-ksc-1995-per-second.tbz2"),
                        "-C", tmp], check=True)
        path = [os.path.join(r, f) for r, _, fs in os.walk(tmp) for f in fs][0]
        x = np.array(open(path).read().split(), dtype=float)
    n = len(x) // 60 * 60
    return x[:n].reshape(-1, 60).sum(axis=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    args = ap.parse_args()
    h, train_len = 60, 14 * 1440
    for name, series in (("worldcup98", worldcup()), ("nasa-ksc", nasa())):
        errs = {"ppe auto": [], "seasonal naive (1440)": [], "naive": []}
        cover, secs, models = [], [], []
        for k in range(8):
            origin = len(series) - 2 * 1440 + k * 360
            y, yt = series[origin - train_len:origin], series[origin:origin + h]
            t0 = time.perf_counter()
            r = common.run_cli(args.cli, y, ["--period", "1440", "--period", "10080",
                                             "--horizon", str(h), "--no-arima",
                                             "--snaive-every-period"])
            secs.append(time.perf_counter() - t0)
            models.append(r["model"])
            scale = np.mean(np.abs(y[1440:] - y[:-1440]))
            for key, f in (("ppe auto", np.asarray(r["mean"])),
                           ("seasonal naive (1440)", y[-1440:][:h]),
                           ("naive", np.repeat(y[-1], h))):
                errs[key].append(np.mean(np.abs(yt - f)) / scale)
            cover.append(np.mean(yt <= np.asarray(r["upper"])))
        print("%s (%d minutes): MASE over 8 origins, h = 60:" % (name, len(series)))
        for key, v in errs.items():
            print("  %-24s %.3f" % (key, np.mean(v)))
        print("  upper 95%% bound covers %.1f%% of actual minutes; fit+forecast %.2f s median"
              % (100 * np.mean(cover), np.median(secs)))
        print("  models: %s" % ", ".join(sorted(set(models))))


if __name__ == "__main__":
    main()
