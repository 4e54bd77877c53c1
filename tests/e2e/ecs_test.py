"""EDNS Client Subnet per RFC 7871 through a real pdns_server: the scope of an
untagged answer is the region's CIDR (capped at the source prefix), /24 or /56
where no rule gives one; source /0 is answered for the resolver's address with
scope 0; malformed options never cost a SERVFAIL. Queries with kdig +subnet;
malformed options as raw packets."""

import os
import re
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, wait_until  # noqa: E402

ZONE = "cdn.example.test"
NAME = f"video.{ZONE}"
FALLBACK = "192.0.2.10"
# Every untagged query counts at once (no probe window to wait out in this test),
# and one query makes a cohort sustained: each subnet's cohort gets its VM.
COHORTS = "\ncohorts { min_requests: 1 buckets: 1 probe_window_ms: 1 }\n"


def kdig(stack, name, subnet=None, qtype="A"):
    argv = ["kdig", f"@127.0.0.1", "-p", str(stack.dns_port), name, qtype, "+time=3",
            "+retry=0"]
    if subnet:
        argv.append(f"+subnet={subnet}")
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    status = re.search(r"status: (\w+)", out)
    scope = re.search(r"CLIENT-SUBNET: [0-9a-fA-F.:]+/(\d+)/(\d+)", out)
    addresses = sorted(re.findall(rf"^{re.escape(name)}\.\s+\d+\s+IN\s+A+\s+(\S+)", out, re.M))
    return (status.group(1) if status else "TIMEOUT", int(scope.group(2)) if scope else None,
            addresses)


def raw_query(port, option_data, qid=4242, option_code=8):
    """An A query for NAME whose OPT record carries `option_data` verbatim."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in NAME.split(".")) + b"\0"
    option = struct.pack("!HH", option_code, len(option_data)) + option_data
    opt = b"\0" + struct.pack("!HHIH", 41, 4096, 0, len(option)) + option
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(header + qname + struct.pack("!HH", 1, 1) + opt, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return "TIMEOUT"
    return {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 5: "REFUSED"}.get(data[3] & 0xF,
                                                                       str(data[3] & 0xF))


class Ecs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(extra_ppe_conf=COHORTS).start()

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def answer_after_registration(self, subnet):
        """The cohort's own VM: the first queries register it (min_requests 1)."""
        first = kdig(self.stack, NAME, subnet)
        self.assertEqual(first[0], "NOERROR")
        result = {}

        def registered():
            result["a"] = kdig(self.stack, NAME, subnet)
            return result["a"][2] and result["a"][2] != [FALLBACK]
        wait_until(f"the cohort of {subnet}", registered, timeout=10)
        return first, result["a"]

    def test_scopes(self):
        cases = [  # subnet, scope expected: the region's CIDR or /24, /56, capped at the source
            ("198.51.100.0/24", 24),  # eu-west, 198.51.100.0/24
            ("198.51.100.77/32", 24),  # a /32 client of that /24 region
            ("10.1.0.0/16", 8),       # private-10, 10.0.0.0/8: one entry for the region
            ("192.0.0.0/16", 16),     # no rule: /24, capped at the source /16
            ("192.0.2.7/32", 24),     # no rule: /24
            ("2001:db8:1:200::/56", 56),  # no rule: /56
            ("2001:db8::1/128", 56),
            ("2001:db8::/32", 32),    # capped at the source
        ]
        for subnet, scope in cases:
            with self.subTest(subnet=subnet):
                status, got, addresses = kdig(self.stack, NAME, subnet)
                self.assertEqual(status, "NOERROR")
                self.assertEqual(got, scope)
                self.assertTrue(addresses, "no address")

    def test_source_zero_is_answered_for_the_resolver_with_scope_0(self):
        # kdig runs on 127.0.0.1: the resolver's own region is "local" (127.0.0.0/8).
        local_first, local = self.answer_after_registration("127.0.0.1/32")
        zero_first, zero = self.answer_after_registration("0.0.0.0/0")
        self.assertEqual(zero_first[1], 0)
        self.assertEqual(zero[1], 0)
        self.assertEqual(zero[2], local[2])  # the resolver's cohort
        # An ECS client elsewhere still gets its own cohort, not the scope-0 answer.
        _, eu = self.answer_after_registration("198.51.100.0/24")
        self.assertNotEqual(eu[2], zero[2])
        self.assertEqual(kdig(self.stack, NAME, "0.0.0.0/0")[2], zero[2])
        regions = {p["attributes"]["region"] for p in self.stack.ppectl_json("profiles")
                   .get("profiles", []) if p["origin"] == "dns"}
        self.assertIn("local", regions)  # /0 counted for the resolver, not "unknown"

    def test_malformed_options_never_servfail(self):
        cases = {
            "family 3": struct.pack("!HBB", 3, 24, 0) + bytes([198, 51, 100]),
            "IPv4 source /33": struct.pack("!HBB", 1, 33, 0) + bytes([198, 51, 100, 1, 0]),
            "IPv6 source /129": struct.pack("!HBB", 2, 129, 0) + bytes(17),
            "too many address bytes": struct.pack("!HBB", 1, 8, 0) + bytes([10, 1, 2, 3]),
            "too few address bytes": struct.pack("!HBB", 1, 24, 0) + bytes([198]),
            "host bits set": struct.pack("!HBB", 1, 20, 0) + bytes([198, 51, 255]),
            "scope set in a query": struct.pack("!HBB", 1, 24, 24) + bytes([198, 51, 100]),
            "truncated header": b"\x00\x01\x18",
            "empty": b"",
        }
        outcomes = {}
        for what, data in cases.items():
            outcomes[what] = raw_query(self.stack.dns_port, data)
        print("malformed ECS options:", outcomes)
        for what, rcode in outcomes.items():
            self.assertIn(rcode, ("NOERROR", "FORMERR"), what)
        self.assertEqual(kdig(self.stack, NAME, "198.51.100.0/24")[0], "NOERROR")


if __name__ == "__main__":
    unittest.main(verbosity=2)
