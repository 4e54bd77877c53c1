#!/usr/bin/python3
"""Side-by-side validation of ppe-forecast against R's forecast package and statsmodels.

Fits the same real series (M4 hourly, h = 48) with R (ets, auto.arima), statsmodels
(ETSModel) and ours (the ppe-forecast CLI), then checks:
  1. fixed parameters: with R's smoothing parameters and initial states, our
     final states, log-likelihood and point forecasts match R's to 1e-5 relative;
  2. end-to-end ML: our log-likelihood >= R's - 0.01 on >= 95% of (series, model) pairs;
  3. accuracy on the held-out 48 points: our automatic forecaster, both as
     ppe-forecast runs it and as the scaler runs it (no ARIMA), is no worse than
     R's ets (sMAPE, MASE and OWA) and than R's auto.arima where R ran it (sMAPE,
     MASE), and beats seasonal naive (OWA). Our ETS family alone, selected by
     AICc, is compared with R's ets too (ets_owa_no_worse_than_r). The ctest
     registers two of these as known gaps, reported without failing the run:
     ETS alone against R's ets, and the scaler's configuration against R's
     auto.arima (docs/forecasting.md measures both).
Prints a table and writes summary.json / table.md to --out. Exit status 1 if a bar fails.

  --subset ci    12 series (H1, H36, H71, ...: every 35th), auto.arima on 2 of them (CI)
  --subset full  all 414 series (benchmark; see docs/forecasting.md)
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The real data sets the repository carries (tests/data/README.md).
DATA = os.path.join(os.path.dirname(HERE), "data")
H = 48
FREQ = 24
PAIR_MODELS = ["ANN", "AAdN", "AAdA", "MNM", "MAdM"]


def read_m4(name):
    text = subprocess.run(["xz", "-dc", os.path.join(DATA, name)], check=True,
                          capture_output=True, text=True).stdout
    series = {}
    for line in text.splitlines()[1:]:
        f = [c.strip('"') for c in line.split(",")]
        series[f[0]] = [float(v) for v in f[1:] if v != ""]
    return series


def smape(a, f):
    a, f = np.asarray(a), np.asarray(f)
    return float(np.mean(200 * np.abs(a - f) / (np.abs(a) + np.abs(f))))


def mase(insample, a, f, m=FREQ):
    x = np.asarray(insample)
    scale = np.mean(np.abs(x[m:] - x[:-m]))
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(f))) / scale)


def naive2(y, h=H, m=FREQ):
    """M4's Naive2: naive on the seasonally adjusted series (multiplicative classical
    decomposition) when the lag-m autocorrelation is significant at 90%."""
    x = np.asarray(y, dtype=float)
    n = len(x)
    xm = x - x.mean()
    acf = np.array([np.sum(xm[k:] * xm[:n - k]) for k in range(m + 1)]) / np.sum(xm * xm)
    limit = 1.645 * math.sqrt((1 + 2 * np.sum(acf[1:m] ** 2)) / n)
    seasonal = np.ones(m)
    if abs(acf[m]) > limit:
        w = np.r_[0.5, np.ones(m - 1), 0.5] / m
        trend = np.convolve(x, w, mode="valid")  # centred: index t + m/2
        ratio = x[m // 2: m // 2 + len(trend)] / trend
        idx = (np.arange(len(trend)) + m // 2) % m
        seasonal = np.array([ratio[idx == i].mean() for i in range(m)])
        seasonal = seasonal / seasonal.mean()
    adj = x / seasonal[np.arange(n) % m]
    return adj[-1] * seasonal[np.arange(n, n + h) % m]


def owa(sm, ms, sm_n2, ms_n2):
    return 0.5 * (sm / sm_n2 + ms / ms_n2)


def read_r_json(path):
    """R's results as written by r_reference.R (OUT.json, or OUT.json.partial of an
    interrupted run: one record per line)."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".partial"):
        text = "{" + ",".join(l for l in text.splitlines() if l) + "}"
    return json.loads(text)


def run_cli(cli, y, args):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join("%.17g" % v for v in y) + "\n")
        path = f.name
    try:
        t0 = time.perf_counter()
        out = subprocess.run([cli, path] + args, check=True, capture_output=True, text=True)
        secs = time.perf_counter() - t0
    finally:
        os.unlink(path)
    res = json.loads(out.stdout)
    res["seconds"] = secs
    return res


def rel_close(a, b, tol=1e-5, floor=1e-8):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False, float("inf")
    err = np.abs(a - b) / np.maximum(np.abs(b), floor)
    worst = float(np.max(err)) if err.size else 0.0
    return worst <= tol, worst


def reference_forecast(e):
    """R's point forecast to compare ours with.

    Classes 1 and 2 (additive seasonality or none): forecast.ets's mean. For
    multiplicative seasonality forecast.ets returns an analytic class-3 mean
    (with a sigma2 term), so compare with R's recursion (etsforecast), except for
    damped trends, where etsforecast sums phi + phi + ... + phi^(h-1) instead of
    phi + ... + phi^h: there compare with the textbook recursion evaluated in R
    from R's own final state (the summary reports how far R's own output is)."""
    if e["code"][-1] != "M":
        return e["mean"]
    if "d" in e["code"]:
        return e["mean_textbook"]
    return e["mean_det"]


def ets_code(name):
    """'ETS(M,Ad,M)[24]' -> 'MAdM'; None for other models."""
    if not name.startswith("ETS("):
        return None
    return name[4:name.index(")")].replace(",", "")


def statsmodels_fit(y, code):
    """ETSModel with the given code; returns (loglik in R's convention, mean, seconds)."""
    try:
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    except Exception:  # pragma: no cover
        return None
    err = "add" if code[0] == "A" else "mul"
    trend = "add" if code[1] == "A" else None
    damped = "d" in code
    season = {"N": None, "A": "add", "M": "mul"}[code[-1]]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        try:
            model = ETSModel(np.asarray(y, dtype=float), error=err, trend=trend,
                             damped_trend=damped, seasonal=season,
                             seasonal_periods=FREQ if season else None)
            fit = model.fit(disp=False, maxiter=2000)
            mean = fit.forecast(H)
        except Exception:
            return None
        secs = time.perf_counter() - t0
    n = len(y)
    # statsmodels reports the full Gaussian log-likelihood; R's ets drops constants:
    # loglik_R = loglik_full + n/2 (log(2 pi / n) + 1).
    llr = float(fit.llf) + n / 2 * (math.log(2 * math.pi / n) + 1)
    return llr, np.asarray(mean), secs


def merge(dirs):
    """Aggregates the per-series rows of several runs (e.g. a long run in parts)."""
    rows = {}
    for d in dirs:
        with open(os.path.join(d, "summary.json")) as f:
            for r in json.load(f)["rows"]:
                rows[r["series"]] = r
    keys = ["ours_auto", "ours_ets", "ours_ets_rspec", "r_ets", "sm_ets", "snaive", "naive2"]
    common = [r for r in rows.values() if all(k in r["metrics"] for k in keys)]
    print("series with every method: %d (of %d)" % (len(common), len(rows)))
    agg = {k: (np.mean([r["metrics"][k]["smape"] for r in common]),
               np.mean([r["metrics"][k]["mase"] for r in common])) for k in keys}
    n2 = agg["naive2"]
    print("| method | sMAPE | MASE | OWA |\n|---|---|---|---|")
    for k in keys:
        print("| %s | %.3f | %.3f | %.3f |" % (k, agg[k][0], agg[k][1],
                                             owa(agg[k][0], agg[k][1], n2[0], n2[1])))
    return 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--merge":
        return merge(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--subset", choices=["ci", "full"], default="ci")
    ap.add_argument("--out", default="forecast_vs_r")
    ap.add_argument("--no-statsmodels", action="store_true")
    ap.add_argument("--no-pairs", action="store_true", help="skip per-model R fits")
    ap.add_argument("--no-r", action="store_true",
                    help="ours, statsmodels (our ETS specification) and baselines only")
    ap.add_argument("--skip-fixed", action="store_true",
                    help="skip the fixed-parameter and per-model likelihood checks")
    ap.add_argument("--known-failure", action="append", default=[],
                    help="a bar that is reported but does not fail the run (documented gap)")
    ap.add_argument("--r-json", help="reuse R results saved by an earlier run (same subset)")
    ap.add_argument("--r-arima-json", action="append", default=[],
                    help="auto.arima results of a separate R run (r_reference.R ... all "
                         "arima-only) to use with --r-json's ets results; repeatable")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    train, test = read_m4("m4-hourly-train.csv.xz"), read_m4("m4-hourly-test.csv.xz")
    ids = sorted(train, key=lambda s: int(s[1:]))
    if args.subset == "ci":
        ids = ids[::35]                      # H1, H36, H71, ... (12 series)
        arima_ids = ids[1::6]                # 2 of them with auto.arima (H36, H246)
    else:
        arima_ids = ids[::41]                # 11 series with auto.arima (slow in R)
    pair_models = [] if args.no_pairs else PAIR_MODELS

    with tempfile.TemporaryDirectory() as tmp:
        series_csv = os.path.join(tmp, "series.csv")
        with open(series_csv, "w") as f:
            for i in ids:
                f.write(i + "," + ",".join("%.17g" % v for v in train[i]) + "\n")
        r_json = os.path.join(args.out, "r_reference.json")
        t0 = time.perf_counter()
        if args.no_r:
            r_json = None
        elif args.r_json:
            r_json = args.r_json
        else:
            subprocess.run(["/usr/bin/Rscript", os.path.join(HERE, "r_reference.R"), series_csv,
                            r_json, str(FREQ), str(H), ",".join(pair_models) or "-",
                            ",".join(arima_ids) or "-"], check=True)
        r_total = time.perf_counter() - t0
        ref = read_r_json(r_json) if r_json else {}
        for path in args.r_arima_json:
            for sid, rec in read_r_json(path).items():
                if rec["arima"] is not None:
                    ref.setdefault(sid, {"ets": [], "arima": None})["arima"] = rec["arima"]
        if args.r_json and args.subset == "full":
            ids = [i for i in ids if i in ref]  # Like for like when R's run is partial.

    fixed_fail, fixed_n, fixed_worst = [], 0, 0.0
    r_damped_dev = 0.0
    pairs, pair_ok = [], 0
    acc = {k: {"smape": [], "mase": []} for k in
           ["r_ets", "ours_ets", "ours_ets_rspec", "ours_auto", "ours_scaler", "snaive", "naive2",
            "sm_ets", "r_arima"]}
    acc_arima = {k: {"smape": [], "mase": []}
                 for k in ["r_arima", "ours_arima", "ours_auto", "ours_scaler", "snaive"]}
    times = {"r_ets": [], "ours_ets": [], "ours_auto": [], "ours_scaler": [], "sm_ets": [],
             "r_arima": [], "ours_arima": []}
    arima_pairs = []
    rows = []
    for sid in ids:
        y, yt = train[sid], test[sid]
        r = ref.get(sid, {"ets": [], "arima": None})
        fits = {e["label"]: e for e in r["ets"]}
        # 1. Fixed parameters: every R fit of this series.
        for e in ([] if args.skip_fixed else r["ets"]):
            cli_args = ["--model", "ets", "--ets-spec", e["code"], "--period", str(FREQ),
                        "--horizon", str(H), "--alpha", repr(e["alpha"][0]),
                        "--init", ",".join(repr(v) for v in e["init"])]
            for name in ("beta", "gamma", "phi"):
                if e[name][0] is not None:
                    cli_args += ["--" + name, repr(e[name][0])]
            ours = run_cli(args.cli, y, cli_args)
            checks = [rel_close([ours["loglik"]], [e["loglik"]]),
                      rel_close(ours["final_state"], e["final"], floor=1e-3),
                      rel_close(ours["mean"], reference_forecast(e))]
            if e["code"][-1] == "M" and "d" in e["code"]:
                _, dev = rel_close(e["mean_det"], e["mean_textbook"])
                r_damped_dev = max(r_damped_dev, dev)
            fixed_n += 1
            fixed_worst = max(fixed_worst, max(c[1] for c in checks))
            if not all(c[0] for c in checks):
                fixed_fail.append((sid, e["label"], [c[1] for c in checks]))
        # 2. End-to-end ML per (series, model).
        for label, e in ([] if args.skip_fixed else fits.items()):
            ours = run_cli(args.cli, y, ["--model", "ets", "--ets-spec", e["code"],
                                         "--period", str(FREQ), "--horizon", "1"])
            ok = ours["loglik"] >= e["loglik"] - 0.01
            pair_ok += ok
            pairs.append({"series": sid, "model": e["code"], "label": label,
                          "r_loglik": e["loglik"], "ours_loglik": ours["loglik"], "ok": bool(ok)})
        # 3. Accuracy on the held-out data.
        ours_ets = run_cli(args.cli, y, ["--model", "ets", "--period", str(FREQ),
                                         "--horizon", str(H)])
        ours_auto = run_cli(args.cli, y, ["--model", "auto", "--period", str(FREQ),
                                          "--period", str(7 * FREQ), "--horizon", str(H)])
        # What the scaler fits (scaler.cc: ETS, decomposition and naive families).
        ours_scaler = run_cli(args.cli, y, ["--model", "auto", "--no-arima",
                                            "--snaive-every-period", "--period", str(FREQ),
                                            "--period", str(7 * FREQ), "--horizon", str(H)])
        snaive = np.asarray(y[-FREQ:] * (H // FREQ))
        n2 = naive2(y)
        fc = {"ours_ets": ours_ets["mean"], "ours_auto": ours_auto["mean"],
              "ours_scaler": ours_scaler["mean"], "snaive": snaive, "naive2": n2}
        if "auto" in fits:
            fc["r_ets"] = fits["auto"]["mean"]
            times["r_ets"].append(fits["auto"]["seconds"])
            # Our estimates of the specification R chose: separates estimation
            # from selection.
            fc["ours_ets_rspec"] = run_cli(args.cli, y, [
                "--model", "ets", "--ets-spec", fits["auto"]["code"], "--period", str(FREQ),
                "--horizon", str(H)])["mean"]
        times["ours_ets"].append(ours_ets["seconds"])
        times["ours_auto"].append(ours_auto["seconds"])
        times["ours_scaler"].append(ours_scaler["seconds"])
        sm_code = fits["auto"]["code"] if "auto" in fits else ets_code(ours_ets["model"])
        if not args.no_statsmodels and sm_code:
            sm = statsmodels_fit(y, sm_code)
            if sm is not None:
                fc["sm_ets"] = sm[1]
                times["sm_ets"].append(sm[2])
        if r["arima"] is not None:
            ra = r["arima"]
            order = ",".join(str(int(v)) for v in ra["order"]) + (",1" if ra["constant"] else "")
            ours_fixed = run_cli(args.cli, y, ["--model", "arima", "--period", str(FREQ),
                                               "--arima-order", order, "--horizon", "1"])
            ours_arima = run_cli(args.cli, y, ["--model", "arima", "--period", str(FREQ),
                                               "--horizon", str(H)])
            times["ours_arima"].append(ours_arima["seconds"])
            arima_pairs.append({"series": sid, "model": ra["method"], "r_loglik": ra["loglik"],
                                "ours_loglik": ours_fixed["loglik"],
                                "ours_auto": ours_arima["model"],
                                "ours_auto_aicc": ours_arima["aicc"], "r_aicc": ra["aicc"]})
            acc_arima["ours_arima"]["smape"].append(smape(yt, ours_arima["mean"]))
            acc_arima["ours_arima"]["mase"].append(mase(y, yt, ours_arima["mean"]))
            times["r_arima"].append(r["arima"]["seconds"])
            for k, f in (("r_arima", r["arima"]["mean"]), ("ours_auto", ours_auto["mean"]),
                         ("ours_scaler", ours_scaler["mean"]), ("snaive", snaive)):
                acc_arima[k]["smape"].append(smape(yt, f))
                acc_arima[k]["mase"].append(mase(y, yt, f))
        for k, f in fc.items():
            acc[k]["smape"].append(smape(yt, f))
            acc[k]["mase"].append(mase(y, yt, f))
        rows.append({"series": sid, "r_model": fits.get("auto", {}).get("method"),
                     "metrics": {k: {"smape": acc[k]["smape"][-1], "mase": acc[k]["mase"][-1]}
                                 for k in fc},
                     "seconds": {k: v[-1] for k, v in (("ours_ets", times["ours_ets"]),
                                                       ("ours_auto", times["ours_auto"]))},
                     "ours_ets": ours_ets["model"], "ours_auto": ours_auto["model"],
                     "r_mase": acc["r_ets"]["mase"][-1] if "r_ets" in fc else None,
                     "ours_ets_mase": acc["ours_ets"]["mase"][-1],
                     "ours_auto_mase": acc["ours_auto"]["mase"][-1],
                     "ours_scaler_mase": acc["ours_scaler"]["mase"][-1]})
        print("%-5s R %-14s ours %-16s auto %-36s MASE R %.3f ours %.3f auto %.3f scaler %.3f"
              % (sid, rows[-1]["r_model"], ours_ets["model"], ours_auto["model"],
                 rows[-1]["r_mase"] or float("nan"), rows[-1]["ours_ets_mase"],
                 rows[-1]["ours_auto_mase"], rows[-1]["ours_scaler_mase"]), flush=True)

    def summary(d, common=None):
        out = {}
        n2s, n2m = np.mean(acc["naive2"]["smape"]), np.mean(acc["naive2"]["mase"])
        for k, v in d.items():
            if not v["smape"]:
                continue
            s, m = float(np.mean(v["smape"])), float(np.mean(v["mase"]))
            out[k] = {"n": len(v["smape"]), "smape": s, "mase": m}
            if len(v["smape"]) == len(acc["naive2"]["smape"]):
                out[k]["owa"] = owa(s, m, n2s, n2m)
        return out

    res = summary(acc)
    med = {k: float(np.median(v)) if v else None for k, v in times.items()}
    total = {k: float(np.sum(v)) if v else None for k, v in times.items()}
    bars = {}
    share = pair_ok / max(len(pairs), 1)
    if not args.skip_fixed:
        bars["fixed_parameters_match_1e-5"] = not fixed_fail and fixed_n > 0
        bars["loglik_within_0.01_on_95pct"] = share >= 0.95
    def no_worse(ours, ref, metrics):
        return all(ours[m] <= ref[m] + 1e-9 for m in metrics)

    if "r_ets" in res:
        bars["ets_owa_no_worse_than_r"] = no_worse(res["ours_ets"], res["r_ets"], ["owa"])
        for k in ("ours_auto", "ours_scaler"):
            bars[k[5:] + "_no_worse_than_r_ets"] = no_worse(res[k], res["r_ets"],
                                                            ["smape", "mase", "owa"])
    bars["auto_beats_snaive_owa"] = bool(res["ours_auto"]["owa"] < res["snaive"]["owa"])
    bars["scaler_beats_snaive_owa"] = bool(res["ours_scaler"]["owa"] < res["snaive"]["owa"])

    lines = ["| method | series | sMAPE | MASE | OWA | median fit time (s) |",
             "|---|---|---|---|---|---|"]
    names = {"ours_auto": "ppe auto (periods 24, 168)",
             "ours_scaler": "ppe auto without ARIMA (the scaler's)", "ours_ets": "ppe ETS (AICc)",
             "ours_ets_rspec": "ppe ETS, R's specification",
             "r_ets": "R forecast::ets",
             "sm_ets": "statsmodels ETSModel (R's spec)" if not args.no_r
                       else "statsmodels ETSModel (our ETS spec)",
             "snaive": "seasonal naive", "naive2": "Naive2"}
    tkey = {"ours_auto": "ours_auto", "ours_scaler": "ours_scaler", "ours_ets": "ours_ets",
            "r_ets": "r_ets", "sm_ets": "sm_ets"}
    for k in ["ours_auto", "ours_scaler", "ours_ets", "ours_ets_rspec", "r_ets", "sm_ets", "snaive",
              "naive2"]:
        if k in res:
            t = med.get(tkey.get(k, ""), None)
            lines.append("| %s | %d | %.3f | %.3f | %s | %s |" % (
                names[k], res[k]["n"], res[k]["smape"], res[k]["mase"],
                "%.3f" % res[k]["owa"] if "owa" in res[k] else "-",
                "%.3f" % t if t is not None else "-"))
    arima_res = {k: {"n": len(v["smape"]), "smape": float(np.mean(v["smape"])),
                     "mase": float(np.mean(v["mase"]))} for k, v in acc_arima.items() if v["smape"]}
    if arima_res:
        lines.append("")
        lines.append("auto.arima subset (%d series): " % arima_res["r_arima"]["n"] + ", ".join(
            "%s sMAPE %.3f MASE %.3f" % (k, v["smape"], v["mase"]) for k, v in arima_res.items())
            + "; median fit time: R auto.arima %.1f s, ours %.2f s" % (med["r_arima"],
                                                                        med["ours_arima"]))
        for k in ("ours_auto", "ours_scaler"):
            bars[k[5:] + "_no_worse_than_r_arima"] = no_worse(arima_res[k], arima_res["r_arima"],
                                                              ["smape", "mase"])
    table = "\n".join(lines)
    out = {"subset": args.subset, "series": len(ids), "accuracy": res, "accuracy_arima": arima_res,
           "median_seconds": med, "total_seconds": total, "r_total_seconds": r_total,
           "fixed": {"checked": fixed_n, "failed": fixed_fail, "worst_rel_err": fixed_worst,
                     "r_etsforecast_damped_vs_textbook": r_damped_dev},
           "loglik_pairs": {"n": len(pairs), "ok": pair_ok, "share": share,
                            "failures": [p for p in pairs if not p["ok"]]},
           "arima_pairs": arima_pairs, "bars": bars, "rows": rows}
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(out, f, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table + "\n")
    print()
    print(table)
    print("\nfixed-parameter checks: %d, failed %d, worst relative error %.2e" % (
        fixed_n, len(fixed_fail), fixed_worst))
    print("R's own damped M-season recursion forecast vs textbook: max rel. diff %.2e"
          % r_damped_dev)
    print("log-likelihood pairs: %d/%d (%.1f%%) within R - 0.01" % (pair_ok, len(pairs),
                                                                   100 * share))
    for p in out["loglik_pairs"]["failures"]:
        print("  below R: %s %s R %.4f ours %.4f" % (p["series"], p["model"], p["r_loglik"],
                                                    p["ours_loglik"]))
    for p in arima_pairs:
        print("ARIMA %s: R %s loglik %.3f (AICc %.2f); ours same order loglik %.3f; "
              "ours auto %s AICc %.2f" % (p["series"], p["model"], p["r_loglik"], p["r_aicc"],
                                          p["ours_loglik"], p["ours_auto"], p["ours_auto_aicc"]))
    for k, v in bars.items():
        known = " (known gap, not gating; see docs/forecasting.md)" if k in args.known_failure else ""
        print("%-32s %s%s" % (k, "PASS" if v else "FAIL", "" if v else known))
    gating = [v for k, v in bars.items() if k not in args.known_failure]
    return 0 if all(gating) else 1


if __name__ == "__main__":
    sys.exit(main())
