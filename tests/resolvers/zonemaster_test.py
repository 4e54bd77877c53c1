#!/usr/bin/env python3
"""Zonemaster (Debian zonemaster-cli), undelegated, against the zone as pdns +
ppe-backend + ppe-server serve it: two in-zone nameservers whose addresses come
from nameserver_addresses, pdns listening on 127.0.0.2:53 and 127.0.0.3:53 as
well as the harness's port. The only errors allowed are the loopback addresses
themselves (RFC 1122), which any test on one machine has; a missing glue
address or an MNAME that does not resolve would show as an ERROR."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402

ZONE = "cdn.example.test"
GLUE = ('  nameserver_addresses { name: "ns1.cdn.example.test." addresses: "127.0.0.1" }',
        '  nameservers: "ns2.cdn.example.test."\n'
        '  nameserver_addresses { name: "ns1.cdn.example.test." addresses: "127.0.0.2" }\n'
        '  nameserver_addresses { name: "ns2.cdn.example.test." addresses: "127.0.0.3" }')


class Zonemaster(unittest.TestCase):
    def test_undelegated_zonemaster_finds_no_error_but_loopback(self):
        if shutil.which("zonemaster-cli") is None:
            raise unittest.SkipTest("zonemaster-cli is not installed")
        stack = harness.Stack(conf_replace={GLUE[0]: GLUE[1]})
        stack.set_pdns_option(
            f"local-address=127.0.0.1:{stack.dns_port}, 127.0.0.2:53, 127.0.0.3:53")
        with stack:
            r = subprocess.run(
                ["timeout", "120", "zonemaster-cli", "--no-ipv6", "--level", "NOTICE",
                 "--ns", "ns1.cdn.example.test/127.0.0.2",
                 "--ns", "ns2.cdn.example.test/127.0.0.3", ZONE],
                capture_output=True, text=True)
            print(r.stdout)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = [l for l in r.stdout.splitlines() if l.split()[1:2] in (["ERROR"], ["CRITICAL"])]
            unexpected = [l for l in lines if "'Loopback'" not in l]
            self.assertEqual(unexpected, [])
            # It did test the zone: both nameservers were reached over AXFR/SOA.
            self.assertIn("ns2.cdn.example.test/127.0.0.3", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
