"""Pre-provisioning through the running service: a ramping demand replayed as
real DNS queries (pdns caches off, so every query reaches the PPE), 1 s
scaler buckets, and the pool size sampled every bucket against what the
demand needs. The same replay runs with the reactive scaler as the baseline."""

import json
import math
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, udp_flood  # noqa: E402

PER_VM = 20  # requests per bucket one VM serves (requests_per_vm)
BUCKETS = 24


def scaling_conf(mode):
    """ppe.conf additions: 1 s buckets, a 2 s buffer on top of the boot time."""
    return f"""
scaler {{ mode: {mode.upper()} bucket_ms: 1000 lead_buffer_ms: 2000 refit_every_buckets: 4
         cooldown_buckets: 5 keep_warm_buckets: 5 }}
"""


PER_VM_CONF = {'fallback_addresses: "192.0.2.10"':
               'fallback_addresses: "192.0.2.10"\n    requests_per_vm: 20',
               'limits { max_vms_total: 20000 }':
               'limits { max_vms_total: 20000 max_vms_per_profile: 30 }'}


def replay(mode, stack=None):
    """Replays the ramp against `stack` (default: test:///); returns the rows and the view."""
    stack = stack or Stack(extra_ppe_conf=scaling_conf(mode), conf_replace=PER_VM_CONF)
    for opt in ("cache-ttl=0", "query-cache-ttl=0", "negquery-cache-ttl=0"):
        stack.set_pdns_option(opt)
    stack.start()
    try:
        issued = stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
        host = issued["hostname"]
        stack.query(host)
        rows = []
        start = time.time()
        for i in range(BUCKETS):
            demand = 10 + 9 * i  # 10 .. 217 requests per second
            need = math.ceil(demand / PER_VM)
            ready = sum(1 for v in stack.vms() if v["cpt"] == issued["cpt"] and v["state"] == "ready")
            rows.append((i, demand, need, ready))
            udp_flood(stack.dns_port, [host] * demand, window=16)
            time.sleep(max(0.0, start + i + 1 - time.time()))
        view = stack.ppectl_json("forecast", "--cpt", issued["cpt"], "--service", "video") \
            if mode == "predictive" else {}
        return rows, view
    finally:
        stack.close()


class PreProvisioning(unittest.TestCase):
    def test_vms_are_ready_before_the_ramp_needs_them(self):
        results = {}
        for mode in ("predictive", "reactive"):
            rows, view = replay(mode)
            scored = rows[6:]  # after a short warm-up
            short = sum(1 for _, _, need, ready in scored if ready < need)
            missing = sum(max(0, need - ready) for _, _, need, ready in scored)
            results[mode] = (short, missing, len(scored))
            print(f"{mode}: short in {short}/{len(scored)} buckets, {missing} VM-buckets missing; "
                  f"(bucket, demand, needed, ready): {rows}", flush=True)
            if view:
                print(f"  model {view.get('model')}, lead {view.get('lead_buckets')} buckets, "
                      f"upper {[round(x) for x in view.get('upper', [])]}", flush=True)
        p_short, p_missing, n = results["predictive"]
        r_short, r_missing, _ = results["reactive"]
        self.assertLessEqual(p_short, n // 5, results)       # ready ahead in >= 80% of buckets
        self.assertLess(p_missing, max(1, r_missing), results)


if __name__ == "__main__":
    unittest.main(verbosity=2)
