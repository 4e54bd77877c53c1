"""DNS throughput and latency of the whole stack (pdns_server launch=remote +
ppe-backend + ppe-server on test:///) against pdns_server launch=bind serving
the same names as a static zone, in one run, on one machine, with the same load
generator (dns_load: UDP, per-query ECS, latency percentiles). Prints ours/bind:

  tagged         caches off, uniform over N tagged names whose VMs are ready
  untagged+ECS   default caches, ECS from N distinct /24s, cohorts warm
  random labels  caches off, 26-character random labels (bind: a wildcard);
                 VMs, profiles and plugin RSS before and after
  zipf           default caches, Zipf(1.1) over the N tagged names, steady state
                 (each side first runs the same sample for --seconds, unmeasured)
  p99 @ half     caches off, tagged, at half the peak rate of each side
  table memory   bytes per entry with 1M synthetic entries (answer_table_bench)
  drain -> gone  p99 over D drains, from the Admin call to the last plugin (two
                 plugins, each with its own pdns) answering without the address

  /usr/bin/python3 tests/bench/dns_bench.py [--names 10000] [--seconds 10] [--drains 50]
      [--window 100] [--receiver-threads 2] [--distributor-threads 6]
  /usr/bin/python3 tests/bench/dns_bench.py --sweep      pdns thread settings
  /usr/bin/python3 tests/bench/dns_bench.py --ceiling    pdns + a no-work remote backend
  /usr/bin/python3 tests/bench/dns_bench.py --capacity   the quick start serves N profiles

Every load also reports the CPU time (user + system, /proc/PID/stat) the
answering processes spent per 1,000 answers: pdns (+ ppe-backend + ppe-server
on our side); their ratio moves far less with other load than q/s does.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "dataplane"))
from harness import BUILD, Stack, free_port, rss_kib, udp_flood, wait_until  # noqa: E402
from dataplane_test import SecondPlugin, a_records  # noqa: E402

ZONE = "cdn.example.test"
DNS_LOAD = os.path.join(BUILD, "tests", "bench", "dns_load")
ISSUE_MANY = os.path.join(BUILD, "tests", "bench", "issue_many")
NULL_BACKEND = os.path.join(BUILD, "tests", "bench", "null_backend")
TABLE_BENCH = os.path.join(BUILD, "tests", "bench", "answer_table_bench")
B32 = "abcdefghijklmnopqrstuvwxyz234567"
CACHES_OFF = ("cache-ttl=0", "query-cache-ttl=0", "negquery-cache-ttl=0")
# The quick start's config (wide pools, room for 20,000 VMs), and cohort
# registrations not rate-limited, so the warm-up can register every cohort. A
# cohort becomes a profile (with a VM) after one untagged query in a 1 s bucket:
# with the defaults (5 queries in each of 2 one-minute buckets) the warm-up's
# cohorts have no VM yet, and every untagged query is a fallback from Resolve,
# not a table answer.
BENCH_CONF = """
limits { max_vms_total: 20000 registrations_per_minute: 100000 registrations_burst: 100000 }
cohorts { min_requests: 1 buckets: 1 bucket_ms: 1000 }
"""


def process_tree(pids):
    """`pids` and every process descended from them."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_seconds(pids):
    """User + system CPU seconds used so far by `pids` and their descendants
    (all threads), from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick


def server_pids(side):
    """The processes that answer a side's queries, by name: pdns (+ its backend
    process, + ppe-server)."""
    if isinstance(side, NullStack):
        return {"pdns": side.proc.pid, "null_backend": side.backend.pid}
    if isinstance(side, BindStack):
        return {"pdns": side.proc.pid}
    return {n: side.procs[n].pid for n in ("pdns", "ppe-backend", "ppe-server")}


def load(side, queries, seconds, window, rate=0, ecs_subnets=0, count=0):
    """dns_load's figures against `side` (a Stack or a BindStack), plus
    cpu_ms_per_1k: the CPU milliseconds its servers spent per 1,000 answered
    queries, a figure that other load on the machine disturbs far less than q/s."""
    port, pids = side.dns_port, server_pids(side)
    with tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt") as f:
        f.write("\n".join(queries) + "\n")
        path = f.name
    argv = [DNS_LOAD, str(port), path, str(seconds), "--window", str(window)]
    if rate:
        argv += ["--rate", str(int(rate))]
    if ecs_subnets:
        argv += ["--ecs-subnets", str(ecs_subnets)]
    if count:
        argv += ["--count", str(count)]
    before = {n: cpu_seconds([pid]) for n, pid in pids.items()}
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    per_1k = 1e6 / out["received"] if out["received"] else float("nan")
    out["cpu_by"] = {n: (cpu_seconds([pid]) - before[n]) * per_1k for n, pid in pids.items()}
    out["cpu_ms_per_1k"] = sum(out["cpu_by"].values())
    os.unlink(path)
    return out


def zipf_sample(names, count, s=1.1, seed=18):
    weights = [1.0 / (i + 1) ** s for i in range(len(names))]
    return random.Random(seed).choices(names, weights=weights, k=count)


def random_labels(count, seed=18):
    rng = random.Random(seed)
    return ["".join(rng.choice(B32) for _ in range(26)) + f".video.{ZONE}" for _ in range(count)]


def threads(stack, args):
    stack.set_pdns_option(f"receiver-threads={args.receiver_threads}")
    stack.set_pdns_option(f"distributor-threads={args.distributor_threads}")


class BindStack:
    """pdns_server launch=bind with the same names as a static zone."""

    def __init__(self, tagged, caches_off, args):
        self.dir = tempfile.mkdtemp(prefix="ppe-bench-bind-")
        self.dns_port = free_port()
        zone = [f"$ORIGIN {ZONE}.", "$TTL 30",
                f"@ 3600 IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 10800 3600 604800 3600",
                f"@ 3600 IN NS ns1.{ZONE}.", "video IN A 192.0.2.10", "*.video IN A 192.0.2.10"]
        for name, ip in tagged:
            zone.append(f"{name}. IN A {ip}")
        with open(os.path.join(self.dir, "zone"), "w") as f:
            f.write("\n".join(zone) + "\n")
        with open(os.path.join(self.dir, "named.conf"), "w") as f:
            f.write(f'zone "{ZONE}" {{ type master; file "{self.dir}/zone"; }};\n')
        self._launch_pdns("bind pdns", ["launch=bind", f"bind-config={self.dir}/named.conf"],
                          caches_off, args)

    def _launch_pdns(self, what, backend_lines, caches_off, args):
        """Writes pdns.conf (the backend's lines, then the settings every run
        shares) and starts pdns_server on self.dns_port."""
        lines = backend_lines + [
            "local-address=127.0.0.1", f"local-port={self.dns_port}",
            f"socket-dir={self.dir}", "disable-syslog=yes", "loglevel=3",
            f"receiver-threads={args.receiver_threads}",
            f"distributor-threads={args.distributor_threads}"]
        if caches_off:
            lines += list(CACHES_OFF)
        with open(os.path.join(self.dir, "pdns.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(["pdns_server", f"--config-dir={self.dir}", "--daemon=no",
                                      "--guardian=no"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(what, self._up, 20)

    def _up(self):
        try:
            a_records(self.dns_port, ZONE)
            return True
        except OSError:
            return False

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class NullStack(BindStack):
    """pdns_server launch=remote on null_backend, a responder that does no work
    (constant replies): what any remote backend can reach at best here."""

    def __init__(self, caches_off, args):
        self.dir = tempfile.mkdtemp(prefix="ppe-bench-null-")
        self.dns_port = free_port()
        sock = os.path.join(self.dir, "null.sock")
        self.backend = subprocess.Popen([NULL_BACKEND, sock, ZONE + ".", "192.0.2.10"])
        wait_until("null_backend", lambda: os.path.exists(sock), 10)
        self._launch_pdns("null pdns", [
            "launch=remote", f"remote-connection-string=unix:path={sock},timeout=2000",
            "consistent-backends=no"], caches_off, args)

    def close(self):
        super().close()
        self.backend.terminate()
        self.backend.wait(timeout=10)


def ceiling(args):
    """caches-off throughput of pdns + a no-work remote backend against pdns +
    bind: the best ratio any remote backend can reach with pdns's per-query
    look-ups (apex SOA, an NS look-up per label below the apex, the answer)."""
    rng = random.Random(18)
    names = ["".join(rng.choice(B32) for _ in range(26)) + f".video.{ZONE}"
             for _ in range(args.names)]
    queries = [f"{n} A" for n in names]
    null = NullStack(True, args)
    try:
        ours = load(null, queries, args.seconds, args.window)
    finally:
        null.close()
    bind = BindStack([(n, "192.0.2.10") for n in names], True, args)
    try:
        theirs = load(bind, queries, args.seconds, args.window)
    finally:
        bind.close()
    print(f"caches off, {args.names} names, receiver-threads {args.receiver_threads}, "
          f"distributor-threads {args.distributor_threads}, load {os.getloadavg()[0]:.1f}")
    print(f"pdns+null remote backend {ours['qps']:.0f} q/s, {ours['cpu_ms_per_1k']:.1f} ms CPU "
          f"per 1k; pdns+bind {theirs['qps']:.0f} q/s, {theirs['cpu_ms_per_1k']:.1f} ms per 1k; "
          f"ratio q/s {ratio(ours['qps'], theirs['qps']):.2f}, CPU "
          f"{ratio(theirs['cpu_ms_per_1k'], ours['cpu_ms_per_1k']):.2f}; ms per 1k by process: "
          + ", ".join(f"{n} {v:.1f}" for n, v in ours["cpu_by"].items()))


def capacity(args):
    """The quick start's config as shipped (deploy/conf/, test:/// driver): N
    profiles issued, each name queried once (its first query allocates its VM),
    then again: how many answer their own VM's address and how many the fallback."""
    stack = Stack().start()
    try:
        start = time.time()
        names = subprocess.run([ISSUE_MANY, f"127.0.0.1:{stack.grpc_port}", str(args.names)],
                               capture_output=True, text=True, check=True).stdout.split()
        first = udp_flood(stack.dns_port, names, window=32)
        time.sleep(2)
        vms = [v for v in stack.vms() if v["state"] == "ready"]
        ip_of = {v["cpt"]: v["ip"] for v in vms}
        own = fallback = other = 0
        for n in names:
            got = a_records(stack.dns_port, n)
            if got == [ip_of.get(n.split(".")[0])]:
                own += 1
            elif got == ["192.0.2.10"]:
                fallback += 1
            else:
                other += 1
        profiles = len(stack.ppectl_json("profiles")["profiles"])
        print(f"quick start config, test:///: {len(names)} profiles issued, {profiles} listed, "
              f"{len(vms)} VMs ready, {len(set(ip_of.values()))} distinct addresses; first "
              f"queries {first}; second pass: {own} answered with their own VM, {fallback} "
              f"with the fallback, {other} otherwise ({time.time() - start:.0f} s)")
    finally:
        stack.close()


def ppe_stack(caches_off, args):
    stack = Stack(conf_replace={"limits { max_vms_total: 20000 }": BENCH_CONF})
    if caches_off:
        for opt in CACHES_OFF:
            stack.set_pdns_option(opt)
    threads(stack, args)
    return stack.start()


def warm_tagged(stack, n):
    names = subprocess.run([ISSUE_MANY, f"127.0.0.1:{stack.grpc_port}", str(n)],
                           capture_output=True, text=True, check=True).stdout.split()
    start = time.time()
    udp_flood(stack.dns_port, names, window=32)  # each first query allocates the VM
    ips = {v["cpt"]: v["ip"] for v in stack.vms() if v["state"] == "ready"}
    tagged = [(n, ips[n.split(".")[0]]) for n in names if n.split(".")[0] in ips]
    print(f"  {len(tagged)}/{n} tagged names with a ready VM after {time.time() - start:.0f} s",
          flush=True)
    return tagged


def ratio(ours, bind):
    return ours / bind if bind else float("nan")


def sweep(args):
    """pdns thread settings: caches-off tagged throughput of both sides."""
    print(f"{'receiver':>8s} {'distrib':>8s} {'ours q/s':>10s} {'bind q/s':>10s} {'ratio':>6s}"
          f" {'ours ms/1k':>10s} {'bind ms/1k':>10s} {'load':>5s}")
    for r, d in ((1, 3), (1, 6), (2, 3), (2, 6), (1, 12), (2, 12)):
        args.receiver_threads, args.distributor_threads = r, d
        stack = ppe_stack(True, args)
        try:
            tagged = warm_tagged(stack, args.names)
            time.sleep(3)
            queries = [f"{n} A" for n, _ in tagged]
            ours = load(stack, queries, args.seconds, args.window)
            bind = BindStack(tagged, True, args)
            try:
                theirs = load(bind, queries, args.seconds, args.window)
            finally:
                bind.close()
        finally:
            stack.close()
        print(f"{r:8d} {d:8d} {ours['qps']:10.0f} {theirs['qps']:10.0f} "
              f"{ratio(ours['qps'], theirs['qps']):6.2f} {ours['cpu_ms_per_1k']:10.1f} "
              f"{theirs['cpu_ms_per_1k']:10.1f} {os.getloadavg()[0]:5.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--names", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--drains", type=int, default=50)
    ap.add_argument("--window", type=int, default=100)
    # The quick start's pdns.conf settings, given to both sides.
    ap.add_argument("--receiver-threads", type=int, default=2)
    ap.add_argument("--distributor-threads", type=int, default=6)
    ap.add_argument("--sweep", action="store_true",
                    help="only caches-off tagged, ours and bind, for several pdns thread settings")
    ap.add_argument("--ceiling", action="store_true",
                    help="only caches-off pdns + a no-work remote backend against pdns + bind")
    ap.add_argument("--capacity", action="store_true",
                    help="only: the quick start's config serves --names profiles with VMs")
    args = ap.parse_args()
    if args.capacity:
        return capacity(args)
    if args.sweep:
        return sweep(args)
    if args.ceiling:
        return ceiling(args)
    rows = []
    load_at_start = f"{os.getloadavg()[0]:.1f}"

    # --- caches off: tagged, random labels, p99 at half peak, drains
    stack = ppe_stack(True, args)
    try:
        tagged = warm_tagged(stack, args.names)
        time.sleep(10)  # let the allocations' store writes settle
        queries = [f"{n} A" for n, _ in tagged]
        ours = load(stack, queries, args.seconds, args.window)
        bind = BindStack(tagged, True, args)
        try:
            theirs = load(bind, queries, args.seconds, args.window)
            rows.append(("caches off, uniform tagged", ours, theirs, 0.5))
            ours_half = load(stack, queries, args.seconds, args.window,
                             rate=ours["qps"] / 2)
            theirs_half = load(bind, queries, args.seconds, args.window,
                               rate=theirs["qps"] / 2)
            flood = [f"{n} A" for n in random_labels(20000)]
            vms, profiles = len(stack.vms()), len(stack.ppectl_json("profiles")["profiles"])
            pid = stack.procs["ppe-backend"].pid
            rss = rss_kib(pid)
            ours_flood = load(stack, flood, args.seconds, args.window)
            theirs_flood = load(bind, flood, args.seconds, args.window)
            flood_cost = (len(stack.vms()) - vms,
                          len(stack.ppectl_json("profiles")["profiles"]) - profiles,
                          (rss_kib(pid) - rss) / 1024)
            rows.append(("caches off, random labels", ours_flood, theirs_flood, 0.5))
        finally:
            bind.close()

        second = SecondPlugin(stack)
        second.start()
        delays, after_return = [], []
        try:
            ports = [stack.dns_port, second.dns_port]
            by_ip = {v["ip"]: v for v in stack.vms()}
            for name, ip in tagged[:args.drains]:
                vm = by_ip[ip]
                wait_until("both plugins", lambda: all(
                    ip in a_records(p, name) for p in ports), 5)
                start = time.time()
                stack.ppectl("drain", "--vm", vm["name"])
                returned = time.time()
                gone = set()
                while len(gone) < 2 and time.time() - start < 5:
                    for p in ports:
                        if ip not in a_records(p, name):
                            gone.add(p)
                delays.append(time.time() - start)
                after_return.append(time.time() - returned)
        finally:
            second.stop()
    finally:
        stack.close()

    # --- default caches: untagged + ECS, Zipf over the tagged names
    stack = ppe_stack(False, args)
    try:
        tagged = warm_tagged(stack, args.names)
        udp_flood(stack.dns_port, [f"video.{ZONE}"] * 1, ecs=("10.0.0.0", 24))
        time.sleep(1)
        # Warm every /24's cohort: two passes (the first registers the cohort's
        # profile and gets its VM), then two more, answered from it (table entries).
        for _ in range(2):
            warm = load(stack, [f"video.{ZONE} A"], 300, 20, ecs_subnets=args.names,
                        count=2 * args.names)
            time.sleep(3)
        ours_ecs = load(stack, [f"video.{ZONE} A"], args.seconds, args.window,
                        ecs_subnets=args.names)
        zipf = [f"{n} A" for n, _ in zipf_sample(tagged, 200000)]
        load(stack, zipf, args.seconds, args.window)  # the caches' steady state
        ours_zipf = load(stack, zipf, args.seconds, args.window)
        bind = BindStack(tagged, False, args)
        try:
            theirs_ecs = load(bind, [f"video.{ZONE} A"], args.seconds, args.window,
                              ecs_subnets=args.names)
            load(bind, zipf, args.seconds, args.window)
            theirs_zipf = load(bind, zipf, args.seconds, args.window)
        finally:
            bind.close()
        bind_off = BindStack(tagged, True, args)
        try:
            theirs_ecs_off = load(bind_off, [f"video.{ZONE} A"], args.seconds,
                                  args.window, ecs_subnets=args.names)
        finally:
            bind_off.close()
        rows.append(("untagged+ECS, default caches (vs bind caches off)", ours_ecs,
                     theirs_ecs_off, 0.4))
        rows.append(("default caches, Zipf tagged", ours_zipf, theirs_zipf, 0.9))
    finally:
        stack.close()

    table = subprocess.run([TABLE_BENCH, "1000000", "1"], capture_output=True, text=True,
                           check=True).stdout

    print(f"\nPPE vs pdns+bind, {args.names} names, {args.seconds} s per case, window "
          f"{args.window}, receiver-threads {args.receiver_threads}, distributor-threads "
          f"{args.distributor_threads}; load average at start {load_at_start}, now "
          f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("q/s: answers per second; CPU: ms of CPU per 1,000 answers of the answering "
          "processes; cpu ratio = bind's CPU / ours (the load-independent ours/bind)")
    print(f"{'case':52s} {'ours q/s':>9s} {'bind q/s':>9s} {'q/s ratio':>9s} {'ours CPU':>8s} "
          f"{'bind CPU':>8s} {'cpu ratio':>9s} {'goal':>5s} {'ours p99':>9s} {'bind p99':>9s}")
    for name, o, b, goal in rows:
        print(f"{name:52s} {o['qps']:9.0f} {b['qps']:9.0f} {ratio(o['qps'], b['qps']):9.2f} "
              f"{o['cpu_ms_per_1k']:8.1f} {b['cpu_ms_per_1k']:8.1f} "
              f"{ratio(b['cpu_ms_per_1k'], o['cpu_ms_per_1k']):9.2f} {goal:5.2f} "
              f"{o['p99_ms']:7.2f}ms {b['p99_ms']:7.2f}ms  (ours servfail {o['servfail']}, lost "
              f"{o['lost']}; ours CPU by process: "
              + ", ".join(f"{n} {v:.1f}" for n, v in o["cpu_by"].items()) + ")")
    print(f"p99 at half peak, caches off, tagged: ours {ours_half['p99_ms']:.2f} ms at "
          f"{ours_half['qps']:.0f} q/s, bind {theirs_half['p99_ms']:.2f} ms at "
          f"{theirs_half['qps']:.0f} q/s (goal: ours <= bind + 1 ms)")
    print(f"random-label flood: +{flood_cost[0]} VMs, +{flood_cost[1]} profiles, plugin RSS "
          f"{flood_cost[2]:+.1f} MiB (goal 0, 0, < 10)")
    print(f"untagged+ECS vs bind with default caches: "
          f"{ratio(ours_ecs['qps'], theirs_ecs['qps']):.2f}; cohort warm-up {warm['qps']:.0f} q/s")
    print("answer table: " + table.strip().replace("\n", "; "))
    for what, d in (("from ppectl's start", delays), ("from the drain call's return", after_return)):
        d.sort()
        if d:
            p99 = d[min(len(d) - 1, int(0.99 * len(d)))]
            print(f"drain -> gone from 2 plugins over {len(d)} drains, {what}: p50 "
                  f"{statistics.median(d) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (goal <= 200 ms)")


if __name__ == "__main__":
    main()
