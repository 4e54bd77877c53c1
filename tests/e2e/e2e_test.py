"""End to end through a real pdns_server (launch=remote), the backend plugin
and the PPE service on libvirt's test:/// driver."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402

ZONE = "cdn.example.test"


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack()
        cls.stack.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None)

    def issue(self, **attrs):
        args = ["issue"]
        for k, v in attrs.items():
            args += [f"--{k}", v]
        return self.stack.ppectl_json(*args)

    def test_tagged_name_resolves_to_the_profiles_vm_and_again_to_the_same(self):
        issued = self.issue(service="video", region="eu-west", device="tv", tier="premium")
        first = self.stack.query(issued["hostname"])
        self.assertEqual(first.status, "NOERROR")
        self.assertEqual(len(first.addresses()), 1, first)
        vm = [v for v in self.stack.vms() if v["cpt"] == issued["cpt"]]
        self.assertEqual(len(vm), 1)
        self.assertEqual(first.addresses(), [vm[0]["ip"]])
        self.assertEqual(vm[0]["state"], "ready")
        self.assertEqual(vm[0]["service"], "video")
        self.assertEqual(vm[0]["workload_class"], "cpu-heavy")
        again = self.stack.query(issued["hostname"].upper())  # DNS is case-insensitive
        self.assertEqual(again.addresses(), first.addresses())
        self.assertEqual(len([v for v in self.stack.vms() if v["cpt"] == issued["cpt"]]), 1)

    def test_db_service_uses_the_memory_heavy_class(self):
        issued = self.issue(service="db", region="us-east")
        answer = self.stack.query(issued["hostname"])
        vm = [v for v in self.stack.vms() if v["cpt"] == issued["cpt"]]
        self.assertEqual(answer.addresses(), [vm[0]["ip"]])
        self.assertEqual(vm[0]["workload_class"], "memory-heavy")
        self.assertTrue(vm[0]["ip"].startswith("10.65."))

    def test_untagged_name_with_two_ecs_subnets_gets_scoped_answers(self):
        before = len(self.stack.vms())
        eu = self.stack.query(f"video.{ZONE}", subnet="198.51.100.0/24")
        us = self.stack.query(f"video.{ZONE}", subnet="203.0.113.0/24")
        self.assertEqual(eu.status, "NOERROR")
        self.assertEqual(us.status, "NOERROR")
        self.assertEqual(eu.scope, 24)
        self.assertEqual(us.scope, 24)
        # One untagged query is no demand yet: the shared pool (no spares in this
        # config: the fallback), no profile and no VM for either cohort.
        self.assertEqual(eu.addresses(), ["192.0.2.10"])
        self.assertEqual(us.addresses(), ["192.0.2.10"])
        self.assertEqual(len(self.stack.vms()), before)
        # A /16 client subnet of the 10.0.0.0/8 region: one cache entry per region.
        wide = self.stack.query(f"video.{ZONE}", subnet="10.1.0.0/16")
        self.assertEqual(wide.scope, 8)

    def test_forged_cpt_creates_no_vm(self):
        subnet = "203.0.113.0/24"
        self.stack.query(f"video.{ZONE}", subnet=subnet)  # the derived profile exists
        vms_before = len(self.stack.vms())
        profiles_before = len(self.stack.ppectl_json("profiles").get("profiles", []))
        for label in ["a" * 26, "bzzzzzzzzzzzzzzzzzzzzzzzzz", "not-a-cpt", "a" * 16]:
            answer = self.stack.query(f"{label}.video.{ZONE}", subnet=subnet)
            self.assertEqual(answer.status, "NOERROR", label)
            self.assertEqual(len(answer.addresses()), 1, label)  # answered as untagged
        self.assertEqual(len(self.stack.vms()), vms_before)
        profiles = self.stack.ppectl_json("profiles").get("profiles", [])
        self.assertEqual(len(profiles), profiles_before)
        self.assertNotIn("a" * 26, [p["cpt"] for p in profiles])

    def test_apex_soa_and_ns(self):
        soa = self.stack.query(ZONE, "SOA")
        self.assertEqual(soa.status, "NOERROR")
        self.assertEqual(len(soa.records), 1)
        self.assertTrue(soa.records[0][3].startswith("ns1.cdn.example.test. hostmaster."))
        ns = self.stack.query(ZONE, "NS")
        self.assertEqual([r[3] for r in ns.records], ["ns1.cdn.example.test."])
        tcp = self.stack.query(ZONE, "SOA", tcp=True)
        self.assertEqual(tcp.records, soa.records)

    def test_in_zone_nameserver_and_soa_mname_resolve(self):
        # The NS and the SOA MNAME name ns1 inside the zone: its address comes
        # from nameserver_addresses, answered by the plugin from the zone data.
        a = self.stack.query(f"ns1.{ZONE}", "A")
        self.assertEqual(a.status, "NOERROR")
        self.assertEqual([r[3] for r in a.records], ["127.0.0.1"])
        self.assertEqual(self.stack.query(f"NS1.{ZONE.upper()}", "A").records[0][3], "127.0.0.1")
        self.assertEqual(self.stack.query(f"ns1.{ZONE}", "AAAA").status, "NOERROR")
        self.assertEqual(self.stack.query(f"ns1.{ZONE}", "AAAA").records, [])
        mname = self.stack.query(ZONE, "SOA").records[0][3].split()[0]
        self.assertEqual([r[3] for r in self.stack.query(mname, "A").records], ["127.0.0.1"])
        self.assertEqual(self.stack.query(f"ns2.{ZONE}", "A").status, "NXDOMAIN")

    def test_scaling_admin_calls(self):
        issued = self.issue(service="video", region="us-east", tier="premium")
        self.stack.query(issued["hostname"])
        cpt = issued["cpt"]
        ok = self.stack.ppectl_json("report", "--cpt", cpt, "--service", "video",
                                    "--requests", "500")
        self.assertEqual(ok["accepted"], 1)
        forged = self.stack.ppectl_json("report", "--cpt", "a" * 26, "--service", "video",
                                        "--requests", "500")
        self.assertEqual(forged.get("accepted", 0), 0)
        view = self.stack.ppectl_json("limits", "--cpt", cpt, "--service", "video", "--min", "2",
                                      "--max", "3")
        self.assertEqual((view["min_vms"], view["max_vms"]), (2, 3))
        self.assertEqual(view["desired_vms"], 2)
        deadline = time.time() + 10
        while time.time() < deadline:
            ready = [v for v in self.stack.vms() if v["cpt"] == cpt and v["state"] == "ready"]
            if len(ready) == 2:
                break
            time.sleep(0.1)
        self.assertEqual(len(ready), 2)
        self.stack.ppectl_json("drain", "--vm", ready[-1]["name"])
        states = {v["name"]: v["state"] for v in self.stack.vms()}
        self.assertEqual(states[ready[-1]["name"]], "draining")
        answer = self.stack.query(issued["hostname"], subnet="10.9.9.0/24")
        self.assertNotIn(ready[-1]["ip"], answer.addresses())  # draining VMs are not answered
        bad = self.stack.ppectl("drain", "--vm", "no-such-vm")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("NOT_FOUND", bad.stderr)

    def test_metrics_count_answers(self):
        self.stack.query(self.issue(service="video", region="metrics")["hostname"])
        import urllib.request
        body = urllib.request.urlopen(
            f"http://127.0.0.1:{self.stack.metrics_port}/metrics", timeout=5).read().decode()
        samples = {}
        for line in body.splitlines():
            if line.startswith("ppe_") and " " in line:
                name, value = line.rsplit(" ", 1)
                samples[name] = float(value)
        answered = sum(v for k, v in samples.items() if k.startswith("ppe_answers_total"))
        self.assertGreaterEqual(answered, 1, body)
        self.assertIn('ppe_vms{state="ready",service="video"}', samples, body)
        self.assertGreaterEqual(samples.get("ppe_lookup_latency_seconds_count", 0), 1, body)

    def test_unknown_names_get_nxdomain_and_other_types_nodata(self):
        self.assertEqual(self.stack.query(f"nope.{ZONE}").status, "NXDOMAIN")
        self.assertEqual(self.stack.query(f"a.b.video.{ZONE}").status, "NXDOMAIN")
        self.assertEqual(self.stack.query("example.org", "A").status, "REFUSED")
        txt = self.stack.query(f"video.{ZONE}", "TXT")
        self.assertEqual(txt.status, "NOERROR")
        self.assertEqual(txt.records, [])


class PipeConnector(unittest.TestCase):
    def test_pdns_pipe_connector_starts_the_plugin_and_gets_answers(self):
        stack = Stack()
        stack.use_pipe_connector()
        with stack:
            issued = stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
            tagged = stack.query(issued["hostname"])
            self.assertEqual(len(tagged.addresses()), 1, tagged)
            vm = [v for v in stack.vms() if v["cpt"] == issued["cpt"]]
            self.assertEqual(tagged.addresses(), [vm[0]["ip"]])
            untagged = stack.query(f"video.{ZONE}", subnet="198.51.100.0/24")
            self.assertEqual(untagged.scope, 24)
            self.assertEqual(stack.query(f"nope.{ZONE}").status, "NXDOMAIN")


class PpeDown(unittest.TestCase):
    def test_plugin_answers_fallback_not_servfail_when_the_ppe_is_killed(self):
        with Stack() as stack:
            issued = stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
            self.assertEqual(len(stack.query(issued["hostname"]).addresses()), 1)
            stack.stop("ppe-server", sig=9)
            start = time.time()
            statuses = []
            for i in range(20):
                a = stack.query(f"{i}x{issued['cpt'][2:]}.video.{ZONE}", subnet=f"10.{i}.0.0/24")
                statuses.append(a.status)
                self.assertEqual(a.addresses(), ["192.0.2.10"], a)
                self.assertLessEqual(a.records[0][1], 5)  # short fallback TTL
            self.assertEqual(set(statuses), {"NOERROR"})
            db = stack.query(f"db.{ZONE}")
            self.assertEqual(db.addresses(), ["192.0.2.20"])
            self.assertEqual(stack.query(ZONE, "SOA").status, "NOERROR")  # apex from the cache
            self.assertLess(time.time() - start, 15)
            # The PPE comes back: the plugin reconnects and real answers resume.
            stack.start_ppe()
            deadline = time.time() + 10
            while time.time() < deadline:
                a = stack.query(issued["hostname"])
                if a.addresses() and a.addresses() != ["192.0.2.10"]:
                    break
                time.sleep(0.3)
            self.assertNotEqual(a.addresses(), ["192.0.2.10"])
            self.assertTrue(a.addresses()[0].startswith("10.64."))


if __name__ == "__main__":
    unittest.main(verbosity=2)
