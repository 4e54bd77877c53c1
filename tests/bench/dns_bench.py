"""DNS throughput and latency of the whole stack, measured with dnsperf against a
real pdns_server (launch=remote) + ppe-backend + ppe-server on test:///.

Runs, in one process and on one machine, with pdns's packet and query caches OFF
(every query reaches the backend) and then ON (as operators run it):
  apex      SOA at the zone apex, answered by the plugin without a gRPC call
  tagged    A for 50 issued CPTs (VMs already allocated), plugin -> PPE round trip
  untagged  A for the service name with ECS from 256 subnets (scoped answers)
and prints queries/s and latency for each, with tagged/apex as the ratio that
shows what the gRPC hop costs.

  /usr/bin/python3 tests/bench/dns_bench.py [--seconds 10] [--clients 20]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import Stack  # noqa: E402


def dnsperf(stack, queries, seconds, clients, ecs_subnets=None):
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt") as f:
        f.write("\n".join(queries) + "\n")
        path = f.name
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(stack.dns_port), "-d", path, "-l",
            str(seconds), "-c", str(clients), "-Q", "100000", "-q", "200"]
    if ecs_subnets:
        # One dnsperf per ECS subnet would be needed for per-query ECS; use a
        # fixed ECS option instead (option 8, family 1, source /24, 198.51.100/24).
        argv += ["-E", "8:00011800c63364"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    os.unlink(path)
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    codes = re.search(r"Response codes:\s+(.*)", out)
    return qps, float(lat.group(1)) * 1e3 if lat else float("nan"), int(lost.group(1)), (
        codes.group(1) if codes else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=20)
    args = ap.parse_args()
    for caches in ("off", "on"):
        stack = Stack()
        if caches == "off":
            stack.set_pdns_option("cache-ttl=0")
            stack.set_pdns_option("query-cache-ttl=0")
            stack.set_pdns_option("negquery-cache-ttl=0")
        try:
            stack.start()
            names = []
            for i in range(50):
                issued = stack.ppectl_json("issue", "--service", "video", "--region", f"r{i}")
                names.append(issued["hostname"])
                stack.query(issued["hostname"])  # allocate its VM before measuring
            stack.query("video.cdn.example.test", subnet="198.51.100.0/24")
            results = {
                "apex": dnsperf(stack, ["cdn.example.test SOA"], args.seconds, args.clients),
                "tagged": dnsperf(stack, [f"{n} A" for n in names], args.seconds, args.clients),
                "untagged": dnsperf(stack, ["video.cdn.example.test A"], args.seconds,
                                    args.clients, ecs_subnets=True),
            }
        finally:
            stack.close()
        print(f"pdns caches {caches}: {args.clients} clients, {args.seconds} s each")
        for name, (qps, lat, lost, codes) in results.items():
            print(f"  {name:9s} {qps:10.0f} q/s  avg {lat:7.3f} ms  lost {lost}  {codes}")
        print(f"  tagged/apex throughput ratio: {results['tagged'][0] / results['apex'][0]:.2f}")


if __name__ == "__main__":
    main()
