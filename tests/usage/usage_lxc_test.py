"""VM usage from the hypervisor on real LXC containers: pdns -> plugin -> PPE ->
a private libvirtd (deploy/lxc/setup.sh) on a bridge of its own (a free
10.213.X.0/24 and a bridge name derived from it, so concurrent LXC tests do not
clash), torn down at the end whatever happens.

Two profiles of the "db" service (one vCPU each) get one container each from a
single DNS query. A curl loop against the first container keeps its CPU above
busy_cpu_percent: the scaler adds a second VM to that pool with no DNS demand
behind it. The second profile's container is never touched: it is released
for idleness (the profile itself stays valid, its idle expiry is a day). Once
the load stops, the busy pool's containers go idle and are released too."""

import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Stack, free_lxc_subnet, http_status, wait_until  # noqa: E402

ZONE = "cdn.example.test"
USAGE_CONF = """
scaler { mode: REACTIVE bucket_ms: 1000 cooldown_buckets: 600 keep_warm_buckets: 600 }
limits { max_vms_per_profile: 3 }
usage { poll_interval_s: 1 idle_cpu_percent: 1 idle_period_s: 8 busy_cpu_percent: 8
        busy_period_s: 3 idle_network_bytes_per_s: 50 }
"""

class UsageOnContainers(unittest.TestCase):
    def setUp(self):
        x = free_lxc_subnet("ppeus")
        self.subnet, self.bridge = f"10.213.{x}", f"ppeus{x}"
        self.run_dir = subprocess.run(["mktemp", "-d", "/tmp/ppe-lxc-us.XXXXXX"],
                                      capture_output=True, text=True).stdout.strip()
        self.load = None
        self.stack = None
        uri = subprocess.run([os.path.join(ROOT, "deploy", "lxc", "setup.sh"), self.run_dir,
                              self.bridge, f"{self.subnet}.1/24"], capture_output=True,
                             text=True, check=True).stdout.strip()
        self.uri = uri
        self.stack = Stack(
            ppe_template="ppe-lxc", hypervisor_uri=uri,
            template_vars={"@BRIDGE@": self.bridge, "@SUBNET@": self.subnet,
                           "@GATEWAY@": f"{self.subnet}.1"},
            extra_ppe_conf=USAGE_CONF,
            conf_replace={"    warm_spares: 1\n": "",
                          "registry { drain_s: 60 }":
                          "registry { drain_s: 2 janitor_interval_s: 1 }",
                          'log_level: "info"': 'log_level: "debug"'})
        self.stack.start()

    def tearDown(self):
        if self.load is not None and self.load.poll() is None:
            self.load.kill()
            self.load.wait()
        if self.stack is not None:
            self.stack.close()
        subprocess.run([os.path.join(ROOT, "deploy", "lxc", "teardown.sh"), self.run_dir,
                        self.bridge])
        subprocess.run(["rm", "-rf", self.run_dir])

    def metrics(self):
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{self.stack.metrics_port}/metrics", timeout=3).read().decode()
        out = {}
        for line in text.splitlines():
            m = re.match(r'^(ppe_vm_\w+|ppe_scaler_busy_signals_total)(\{[^}]*\})? (\S+)$', line)
            if m:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out

    def pool(self, cpt):
        return [v for v in self.stack.vms() if v["cpt"] == cpt]

    def domains(self):
        out = subprocess.run(["virsh", "-q", "-c", self.uri, "list", "--name"],
                             capture_output=True, text=True).stdout
        return {d for d in out.split() if d}

    def container_of(self, hostname):
        """The container address a tagged name resolves to. A first query that
        outlasts allocation_wait_ms gets the fallback; the VM comes anyway."""
        found = []

        def resolved():
            found[:] = [a for a in self.stack.query(hostname).addresses()
                        if a.startswith(self.subnet + ".")]
            return bool(found)
        wait_until(f"a container for {hostname}", resolved, timeout=30)
        return found[0]

    def test_curl_loop_scales_a_pool_up_and_an_untouched_container_is_released(self):
        try:
            self.scenario()
        except AssertionError:
            log = os.path.join(self.stack.dir, "ppe-server.log")
            with open(log, errors="replace") as f:
                print("--- ppe-server.log (tail)\n" + "".join(f.readlines()[-40:]))
            print("--- usage metrics", self.metrics())
            raise

    def scenario(self):
        busy = self.stack.ppectl_json("issue", "--service", "db", "--region", "eu-west")
        quiet = self.stack.ppectl_json("issue", "--service", "db", "--region", "us-east")
        busy_ip = self.container_of(busy["hostname"])
        quiet_ip = self.container_of(quiet["hostname"])
        self.assertEqual(http_status(busy_ip), 200)
        quiet_vm = self.pool(quiet["cpt"])[0]["name"]
        self.assertIn(quiet_vm, self.domains())

        # The load: one curl process, 4 requests at a time, against one container.
        start = time.time()
        self.load = subprocess.Popen(
            ["curl", "-s", "--parallel", "--parallel-max", "4", "--max-time", "2",
             f"http://{busy_ip}:8080/?[1-10000000]"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("a second VM for the busy pool", lambda: sum(
            1 for v in self.pool(busy["cpt"]) if v["state"] == "ready") >= 2, timeout=60)
        scaled_after = time.time() - start
        m = self.metrics()
        print(f"busy pool scaled up {scaled_after:.1f} s after the load started; "
              f"busy signals {m.get('ppe_scaler_busy_signals_total')}", flush=True)
        self.assertGreaterEqual(m.get("ppe_scaler_busy_signals_total", 0), 1)
        self.assertGreater(m.get('ppe_vm_cpu_seconds_total{service="db"}', 0), 0)
        self.assertGreater(m.get('ppe_vm_network_bytes_total{direction="rx",service="db"}', 0),
                           0)

        # The untouched container: released for idleness, its profile still valid.
        wait_until("the untouched container released",
                   lambda: not self.pool(quiet["cpt"]) and quiet_vm not in self.domains(),
                   timeout=60)
        released_after = time.time() - start
        print(f"untouched container released {released_after:.1f} s after the load started",
              flush=True)
        self.assertNotEqual(http_status(quiet_ip, timeout=1), 200)
        self.assertIn(quiet["cpt"], [p["cpt"] for p in
                                     self.stack.ppectl_json("profiles").get("profiles", [])])
        self.assertGreaterEqual(self.metrics().get('ppe_vm_idle_releases_total{service="db"}',
                                                   0), 1)
        # The loaded container was never released, and still serves.
        self.assertIn(busy_ip, [v["ip"] for v in self.pool(busy["cpt"])
                                if v["state"] == "ready"])
        self.assertEqual(http_status(busy_ip), 200)

        # Load off: the busy pool goes idle and is released as well.
        self.load.kill()
        self.load.wait()
        stopped = time.time()
        wait_until("the formerly busy pool released", lambda: not self.pool(busy["cpt"]),
                   timeout=60)
        print(f"formerly busy pool released {time.time() - stopped:.1f} s after the load "
              f"stopped", flush=True)
        st = self.stack.ppectl_json("status")
        self.assertEqual(st.get("vms", 0), st.get("hypervisor_domains", 0), st)


if __name__ == "__main__":
    unittest.main(verbosity=2)
