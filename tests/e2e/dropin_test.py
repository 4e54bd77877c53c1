"""PPE added to an existing PowerDNS: pdns_server launches another backend first
(launch=bind,remote or launch=gsqlite3,remote) that serves its own zone. Both
zones must answer, each from its own backend.

    dropin_test.py bind|gsqlite3

Exits 77 (ctest SKIP_RETURN_CODE) when pdns cannot load that backend."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import OTHER_ZONE, Stack  # noqa: E402

ZONE = "cdn.example.test"
FALLBACK = "192.0.2.10"
KIND = sys.argv[1] if len(sys.argv) > 1 else "bind"
MODULES = {"bind": "/usr/lib/x86_64-linux-gnu/pdns/libbindbackend.so",
           "gsqlite3": "/usr/lib/x86_64-linux-gnu/pdns/libgsqlite3backend.so"}


class DropIn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(other_backend=KIND)
        cls.stack.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.stack.__exit__(None)

    def test_the_other_backends_zone_answers(self):
        soa = self.stack.query(OTHER_ZONE, "SOA")
        self.assertEqual(soa.status, "NOERROR", soa)
        self.assertEqual([r[3].split()[2] for r in soa.records], ["2024010101"], soa)
        www = self.stack.query(f"www.{OTHER_ZONE}")
        self.assertEqual(www.addresses(), ["192.0.2.80"], www)
        missing = self.stack.query(f"nothing.{OTHER_ZONE}")
        self.assertEqual(missing.status, "NXDOMAIN", missing)

    def test_ours_answers_as_before(self):
        soa = self.stack.query(ZONE, "SOA")
        self.assertEqual(soa.status, "NOERROR", soa)
        self.assertIn(f"hostmaster.{ZONE}.", soa.records[0][3], soa)
        issued = self.stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
        answer = self.stack.query(issued["hostname"])
        vm = [v for v in self.stack.vms() if v["cpt"] == issued["cpt"]]
        self.assertEqual(len(vm), 1, self.stack.vms())
        self.assertEqual(answer.addresses(), [vm[0]["ip"]], answer)
        self.assertNotEqual(answer.addresses(), [FALLBACK])
        scoped = self.stack.query(f"video.{ZONE}", subnet="198.51.100.0/24")
        self.assertEqual(scoped.status, "NOERROR", scoped)
        self.assertEqual(scoped.scope, 24, scoped)
        self.assertEqual(self.stack.query(f"nothing.{ZONE}").status, "NXDOMAIN")


if __name__ == "__main__":
    module = MODULES.get(KIND)
    if module and not os.path.exists(module):
        print(f"SKIPPED: pdns backend {KIND} not installed ({module})")
        sys.exit(77)
    unittest.main(argv=sys.argv[:1], verbosity=2)
