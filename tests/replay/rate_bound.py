#!/usr/bin/python3
"""What sizing from the demand's rate can reach on a trace, whatever the forecast.

    rate_bound.py COUNTS_FILE --per-vm R [--warmup-buckets W] [--window N]

A clairvoyant policy knows each bucket's true rate in advance: the centred
moving average of the counts over N buckets (default 15). It sizes each
bucket to ceil((m + c * sqrt(m)) / R) VMs (at least 1 while m > 0), for c =
0..10: the mean plus c Poisson standard deviations. Every VM is ready in
time and costs only the buckets it serves. Prints, per c, its VM-seconds
against the oracle's (ceil(count / R) per bucket) and its cold-start rate
(the requests above the bucket's capacity). No policy that sizes from a rate
it must forecast does better at the same cold-start rate, so this bounds
what the PPE's interval can reach (docs/evaluation.md).
"""
import argparse
import math


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("counts")
    ap.add_argument("--per-vm", type=float, required=True, help="requests one VM serves a bucket")
    ap.add_argument("--warmup-buckets", type=int, default=0)
    ap.add_argument("--window", type=int, default=15)
    a = ap.parse_args()
    y = [float(line) for line in open(a.counts) if line.strip()]
    half = a.window // 2
    m = [sum(y[max(0, t - half):t + half + 1]) / len(y[max(0, t - half):t + half + 1])
         for t in range(len(y))]
    scored = range(a.warmup_buckets, len(y))
    oracle = sum(math.ceil(y[t] / a.per_vm - 1e-9) for t in scored)
    requests = sum(y[t] for t in scored)
    print(f"{a.counts}: window {a.window} buckets, {a.per_vm:g} requests per VM a bucket")
    print("| c | VM-s / oracle | cold-start rate |")
    print("| --- | --- | --- |")
    for c in range(11):
        vms = cold = 0.0
        for t in scored:
            k = math.ceil((m[t] + c * math.sqrt(m[t])) / a.per_vm - 1e-9)
            k = max(k, 1 if m[t] > 0 else 0)
            vms += k
            cold += max(0.0, y[t] - k * a.per_vm)
        print(f"| {c} | {vms / oracle:.3f} | {100 * cold / requests:.4f}% |")


if __name__ == "__main__":
    main()
