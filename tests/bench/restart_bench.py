"""How long a PPE restart with many VMs takes to serve again, through a real
pdns_server, with libvirt's test:/// driver (its domains die with the process,
so every VM is re-created by the start-up reconcile).

    /usr/bin/python3 tests/bench/restart_bench.py [--vms 500] [--threads 1,4]

Registers VMS VMs (50 profiles, VMS/50 each, through `ppectl limits` and
`ppectl scale`), then for each worker_threads value restarts ppe-server
(SIGTERM) and times, from the spawn: `ppectl health` first answering
NOT_SERVING (the port is held while the reconcile runs), then SERVING, and a
tagged name resolving through pdns to one of its VMs (not the fallback).
Prints one row per setting and the ratio to the first. A benchmark: it
prints, it asserts only that the restart restored every VM."""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "e2e"))
from durability_test import WIDE_POOLS  # noqa: E402  (room for 500 VMs)
from harness import PPE_SERVER, Stack  # noqa: E402

PROFILES = 50
FALLBACK = "192.0.2.10"


def set_threads(stack, n):
    path = os.path.join(stack.dir, "ppe.conf")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"worker_threads: \d+", f"worker_threads: {n}", text))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=500)
    ap.add_argument("--threads", default="1,4")
    args = ap.parse_args()
    per_profile = max(1, args.vms // PROFILES)
    extra = (f"\nworker_threads: 4\nlimits {{ max_vms_per_profile: {per_profile} "
             f"max_vms_total: {args.vms + 100} }}\n")
    stack = Stack(extra_ppe_conf=extra, conf_replace=WIDE_POOLS)
    try:
        stack.start()
        hosts = []
        for i in range(PROFILES):
            issued = stack.ppectl_json("issue", "--service", "video", "--region", f"r{i}")
            hosts.append(issued["hostname"])
            r = stack.ppectl("limits", "--cpt", issued["cpt"], "--service", "video",
                             "--min", str(per_profile), "--max", str(per_profile))
            assert r.returncode == 0, r.stderr
            r = stack.ppectl("scale", "--cpt", issued["cpt"], "--service", "video")
            assert r.returncode == 0, r.stderr
        total = per_profile * PROFILES
        deadline = time.time() + 300
        while stack.ppectl_json("status").get("vms_by_state", {}).get("ready", 0) < total:
            assert time.time() < deadline, "VMs never became ready"
            time.sleep(0.5)
        print(f"{total} VMs ready in {PROFILES} profiles; restarting ppe-server "
              f"(pdns and ppe-backend keep running)")
        rows = []
        for threads in [int(t) for t in args.threads.split(",")]:
            stack.stop("ppe-server")
            set_threads(stack, threads)
            t0 = time.time()
            stack._spawn("ppe-server", [PPE_SERVER, "--config", os.path.join(stack.dir, "ppe.conf")])
            not_serving = listening = serving = None
            while serving is None:
                assert time.time() - t0 < 300, "ppe-server did not serve again in 300 s"
                if listening is None:
                    health = stack.ppectl("--timeout-ms", "500", "health").stdout.strip()
                    if health == "NOT_SERVING" and not_serving is None:
                        not_serving = time.time() - t0
                    if health == "SERVING":
                        listening = time.time() - t0
                if listening is not None:
                    a = stack.query(hosts[-1], timeout=1)
                    if a.addresses() and a.addresses() != [FALLBACK]:
                        serving = time.time() - t0
                        break
                time.sleep(0.02)
            st = stack.ppectl_json("status")
            restored = st.get("last_reconcile", {}).get("restored", 0)
            failed = st.get("last_reconcile", {}).get("failed", 0)
            assert restored == total and failed == 0, st
            rows.append((threads, not_serving, listening, serving, restored))
        print(f"{'worker_threads':>14} {'NOT_SERVING (s)':>16} {'SERVING (s)':>12} "
              f"{'DNS serves (s)':>15} {'restored':>9} {'ratio':>6}")
        for threads, not_serving, listening, serving, restored in rows:
            seen = "not seen" if not_serving is None else f"{not_serving:.2f}"
            print(f"{threads:>14} {seen:>16} {listening:>12.2f} {serving:>15.2f} {restored:>9} "
                  f"{serving / rows[0][3]:>6.2f}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
