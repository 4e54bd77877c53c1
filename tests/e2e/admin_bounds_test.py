"""Admin input is bounded, through ppectl and a real ppe-server: attribute
strings have length and charset limits, limits and reports for unknown services
or profiles are refused, absurd counts are rejected, and no log line carries an
unbounded caller string."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack  # noqa: E402


class AdminBounds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack().start()
        cls.issued = cls.stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")

    @classmethod
    def tearDownClass(cls):
        cls.stack.close()

    def refused(self, *args, code="INVALID_ARGUMENT", says=""):
        r = self.stack.ppectl(*args)
        self.assertNotEqual(r.returncode, 0, (args, r.stdout))
        self.assertIn(code, r.stderr, args)
        self.assertIn(says, r.stderr, args)
        self.assertLess(len(r.stderr), 1000, args)
        return r

    def test_attribute_strings(self):
        self.refused("issue", "--service", "video", "--region", "r" * 100_000,
                     says="attributes.region is 100000 bytes; the limit is 64")
        self.refused("issue", "--service", "video", "--region", "eu west",
                     says="outside [A-Za-z0-9._:-]")
        self.refused("issue", "--service", "video", "--region", "eu", "--device", "tv\n\x1b[2J",
                     says="attributes.device_class")
        self.refused("issue", "--service", "s" * 5000, "--region", "eu", says="unknown service")
        ok = self.stack.ppectl("issue", "--service", "video", "--region", "r" * 64)
        self.assertEqual(ok.returncode, 0, ok.stderr)

    def test_limits_and_reports(self):
        cpt = self.issued["cpt"]
        self.refused("limits", "--cpt", cpt, "--service", "nosuch", "--min", "1",
                     says="unknown service 'nosuch'")
        self.refused("limits", "--cpt", "a" * 26, "--service", "video", "--min", "1",
                     code="NOT_FOUND")
        self.refused("limits", "--cpt", cpt, "--service", "video", "--min", "1", "--max",
                     "2000000", says="within 0..10000")
        self.refused("report", "--cpt", cpt, "--service", "video", "--requests",
                     "99999999999999", says="requests must be within 1..1000000000")
        self.refused("report", "--cpt", cpt, "--service", "nosuch", "--requests", "5",
                     says="unknown service")
        ok = self.stack.ppectl("report", "--cpt", cpt, "--service", "video", "--requests", "5")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        ok = self.stack.ppectl("limits", "--cpt", cpt, "--service", "video", "--min", "1")
        self.assertEqual(ok.returncode, 0, ok.stderr)

    def test_logs_carry_no_unbounded_field(self):
        self.stack.ppectl("issue", "--service", "v" * 100_000, "--region", "eu")
        self.stack.ppectl("issue", "--service", "video", "--region", "x" * 100_000)
        with open(os.path.join(self.stack.dir, "ppe-server.log"), errors="replace") as f:
            longest = max((len(line) for line in f), default=0)
        self.assertLess(longest, 600)


if __name__ == "__main__":
    unittest.main(verbosity=2)
