"""The whole stack with two hosts: real pdns_server, the plugin and ppe-server
whose `hosts` are two libvirt test:/// connections (independent state each).
Profiles are answered from their region's host, then the nearest region's,
then the fallback when no host has room; the per-host metrics say so."""

import os
import re
import sys
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Stack  # noqa: E402

NODE = "test://" + os.path.join(HERE, "test-node.xml")
# video (cpu-heavy) takes 4 vCPUs: eu-1 holds one VM, us-1 two.
HOSTS = f"""
hosts {{ name: "eu-1" uri: "{NODE}" region: "eu-west" capacity_vcpus: 4
        address_pools {{ service: "video" cidr: "10.70.1.0/24" }}
        address_pools {{ service: "db" cidr: "10.70.101.0/24" }} }}
hosts {{ name: "us-1" uri: "{NODE}" region: "us-east" capacity_vcpus: 8
        address_pools {{ service: "video" cidr: "10.70.2.0/24" }}
        address_pools {{ service: "db" cidr: "10.70.102.0/24" }} }}
region_distances {{ from: "eu-west" to: "us-east" distance: 80 }}
scaler {{ mode: OFF }}
"""


class TwoHosts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(extra_ppe_conf=HOSTS)
        cls.stack.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None)

    def metric(self, name, **labels):
        text = urllib.request.urlopen(
            f"http://127.0.0.1:{self.stack.metrics_port}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    def answer(self, region, device):
        # Same attributes, same CPT: each profile here differs by device.
        issued = self.stack.ppectl_json("issue", "--service", "video", "--region", region,
                                        "--device", device)
        a = self.stack.query(issued["hostname"])
        self.assertEqual(a.status, "NOERROR", a)
        self.assertEqual(len(a.addresses()), 1, a)
        return a.addresses()[0]

    def test_region_then_nearest_then_fallback(self):
        self.assertTrue(self.answer("eu-west", "tv").startswith("10.70.1."))  # eu-1, now full
        self.assertTrue(self.answer("us-east", "tv").startswith("10.70.2."))
        # The nearest region with room: us-1, now full too.
        self.assertTrue(self.answer("eu-west", "phone").startswith("10.70.2."))
        fallback = self.answer("eu-west", "desktop")
        self.assertEqual(fallback, "192.0.2.10")  # nowhere: never an overcommit
        self.assertEqual(self.metric("ppe_host_vms", host="eu-1"), 1)
        self.assertEqual(self.metric("ppe_host_vms", host="us-1"), 2)
        self.assertEqual(self.metric("ppe_host_used", host="us-1", resource="vcpus"), 8)
        self.assertEqual(self.metric("ppe_host_up", host="eu-1"), 1)
        self.assertGreaterEqual(self.metric("ppe_placements_nowhere_total"), 1)
        self.assertEqual(self.metric("ppe_placements_nearby_total"), 1)
        self.assertEqual(self.metric("ppe_vm_limit_exhausted", limit="host_capacity",
                                     service="video"), 1)
        status = self.stack.ppectl_json("status")
        self.assertEqual(status.get("hypervisorDomains", status.get("hypervisor_domains")), 3)
        addresses = [v["ip"] for v in self.stack.vms()]
        self.assertEqual(len(addresses), len(set(addresses)))


if __name__ == "__main__":
    unittest.main()
