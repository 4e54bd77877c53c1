"""The PPE behind the resolvers real clients use: pdns-recursor 4.8 (forward-zones)
and unbound 1.17 (stub-zone, subnetcache) on loopback ports in front of a real
pdns_server, each with its default QNAME minimisation and with it off.

- A minimising resolver asks the untagged parent name (with the client's ECS)
  right before a tagged name: resolving tagged names from many subnets must
  create no DNS-derived profile and no VM beyond the tagged profile's.
- Untagged clients are answered (the shared pool: the service's warm spares).
- Sustained untagged demand from one cohort gives it its own profile and VM."""

import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Stack, free_port, stop_process, wait_until  # noqa: E402

ZONE = "cdn.example.test"
NAME = f"video.{ZONE}"
FALLBACK = "192.0.2.10"
# The strictest threshold: one counted untagged query registers its cohort, so
# only the discount of minimisation probes keeps tagged look-ups from creating
# profiles (the default, 5 queries in each of 2 buckets, is tested in
# tests/resolver). Two warm spares are the video service's shared pool.
PPE_CONF = "\ncohorts { min_requests: 1 buckets: 1 probe_window_ms: 2000 }\n"
SPARES = {'fallback_addresses: "192.0.2.10"': 'fallback_addresses: "192.0.2.10"\n    warm_spares: 2'}


class Resolver:
    """pdns_recursor or unbound on 127.0.0.1:<free port>, forwarding the zone to pdns."""

    def __init__(self, kind, stack, minimise):
        self.kind = kind
        self.port = free_port()
        self.dir = stack.dir
        log = open(os.path.join(stack.dir, f"{kind}.log"), "ab")
        if kind == "recursor":
            with open(os.path.join(stack.dir, "recursor.conf"), "w") as f:
                f.write(f"""local-address=127.0.0.1
local-port={self.port}
socket-dir={stack.dir}
forward-zones={ZONE}=127.0.0.1:{stack.dns_port}
dont-query=
edns-subnet-allow-list={ZONE}
ecs-add-for=0.0.0.0/0, ::/0
use-incoming-edns-subnet=yes
qname-minimization={'yes' if minimise else 'no'}
dnssec=off
threads=1
disable-syslog=yes
""")
            argv = ["pdns_recursor", f"--config-dir={stack.dir}", "--daemon=no",
                    f"--socket-dir={stack.dir}"]
        else:
            conf = os.path.join(stack.dir, "unbound.conf")
            with open(conf, "w") as f:
                f.write(f"""server:
    interface: 127.0.0.1
    port: {self.port}
    username: ""
    chroot: ""
    directory: "{stack.dir}"
    pidfile: "{stack.dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    qname-minimisation: {'yes' if minimise else 'no'}
    module-config: "subnetcache iterator"
    send-client-subnet: 127.0.0.1
    max-client-subnet-ipv4: 24
    domain-insecure: "{ZONE}"
    local-zone: "test." nodefault
stub-zone:
    name: "{ZONE}"
    stub-addr: 127.0.0.1@{stack.dns_port}
remote-control:
    control-enable: no
""")
            argv = ["unbound", "-d", "-c", conf]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_until(kind, lambda: self.query(f"{ZONE}", "SOA")[0] == "NOERROR", timeout=15)
        except AssertionError:
            self.stop()
            raise

    def query(self, name, qtype="A", subnet=None):
        argv = ["dig", "@127.0.0.1", "-p", str(self.port), name, qtype, "+time=3", "+tries=1"]
        if subnet:
            argv.append(f"+subnet={subnet}")
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        status = re.search(r"status: (\w+)", out)
        addresses = sorted(re.findall(rf"^{re.escape(name)}\.?\s+\d+\s+IN\s+A\s+(\S+)", out,
                                      re.M | re.I))
        return (status.group(1) if status else "TIMEOUT"), addresses

    def stop(self):
        stop_process(self.proc)


def metric(stack, sample):
    body = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics",
                                  timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in the metrics")


class BehindResolvers(unittest.TestCase):
    def run_case(self, kind, minimise):
        with Stack(extra_ppe_conf=PPE_CONF, conf_replace=SPARES) as stack:
            resolver = Resolver(kind, stack, minimise)
            try:
                self.check(stack, resolver, f"{kind}, minimisation {'on' if minimise else 'off'}",
                           minimise)
            finally:
                resolver.stop()

    def check(self, stack, resolver, what, minimise):
        wait_until("the warm spares", lambda: len(stack.vms()) >= 2, timeout=15)
        issued = stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
        tagged_vms = None
        # Tagged clients from 16 subnets of one cohort ("unknown" region), at
        # 3 queries per second over about 3 cohort buckets.
        for k in range(16):
            status, addresses = resolver.query(issued["hostname"], subnet=f"192.0.{100 + k}.0/24")
            self.assertEqual(status, "NOERROR", what)
            self.assertTrue(addresses, what)
            time.sleep(0.33)
        time.sleep(2.5)  # every probe's window has passed
        # An untagged client is answered from the shared pool (the warm spares);
        # its query also settles the probes' demand.
        status, addresses = resolver.query(NAME, subnet="192.0.0.0/24")
        spares = sorted(v["ip"] for v in stack.vms() if not v.get("cpt"))
        self.assertEqual(status, "NOERROR", what)
        self.assertTrue(addresses, what)
        self.assertTrue(set(addresses) <= set(spares), (what, addresses, spares))
        time.sleep(0.5)
        profiles = stack.ppectl_json("profiles").get("profiles", [])
        derived = [p for p in profiles if p["origin"] == "dns"]
        owned = [v for v in stack.vms() if v.get("cpt")]
        self.assertEqual(derived, [], f"{what}: tagged look-ups created DNS-derived profiles")
        self.assertEqual({v["cpt"] for v in owned}, {issued["cpt"]}, what)
        probes = metric(stack, 'ppe_untagged_queries_total{outcome="probe"}')
        print(f"{what}: 16 tagged clients -> profiles {len(profiles)}, "
              f"VMs with a profile {len(owned)} (the tagged one's); "
              f"{probes:.0f} minimisation probes discounted", flush=True)
        if minimise:  # the probes did reach the PPE, and were not counted as demand
            self.assertGreaterEqual(probes, 1, what)
        else:
            self.assertEqual(probes, 0, what)

        # Sustained untagged demand from one cohort ("unknown", a new /24 each
        # time so the resolver's cache does not answer): its own profile and VM.
        deadline = time.time() + 20
        k = 1
        while time.time() < deadline:
            resolver.query(NAME, subnet=f"192.0.{k}.0/24")
            k += 1
            time.sleep(0.25)
            derived = [p for p in stack.ppectl_json("profiles").get("profiles", [])
                       if p["origin"] == "dns"]
            if derived and any(v.get("cpt") == derived[0]["cpt"] and v["state"] == "ready"
                               for v in stack.vms()):
                break
        self.assertEqual(len(derived), 1, what)
        self.assertEqual(derived[0]["attributes"]["region"], "unknown", what)
        vm = [v["ip"] for v in stack.vms() if v.get("cpt") == derived[0]["cpt"]]
        status, addresses = resolver.query(NAME, subnet=f"192.0.{k + 1}.0/24")
        self.assertEqual(status, "NOERROR", what)
        self.assertEqual(addresses, vm, what)
        print(f"{what}: untagged demand -> its own profile and VM after {k} queries",
              flush=True)

    def test_recursor_minimising(self):
        self.run_case("recursor", True)

    def test_recursor_not_minimising(self):
        self.run_case("recursor", False)

    def test_unbound_minimising(self):
        self.run_case("unbound", True)

    def test_unbound_not_minimising(self):
        self.run_case("unbound", False)


if __name__ == "__main__":
    unittest.main(verbosity=2)
