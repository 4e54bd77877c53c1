"""Admin API authentication end to end: ppe-server with admin_listen and
admin_auth "mtls" or "token", called by ppectl; DNS through pdns keeps working
on the unauthenticated Resolver port."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
sys.path.insert(0, HERE)
from harness import PPECTL, Stack, free_port  # noqa: E402
from tls_fixture import Pki  # noqa: E402

ZONE = "cdn.example.test"
TOKEN = "tok-7d1f0c9a4b2e48e5a0f3c6d9e2b1a4c7"
# Every Admin RPC, read from the proto so a new one is covered too: called with
# an empty request (`ppectl call`), which a refusal must answer before the handler runs.
with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "proto", "ppe", "v1",
                       "admin.proto")) as _f:
    ADMIN_RPCS = sorted(set(re.findall(r"^\s*rpc\s+(\w+)\s*\(", _f.read(), re.M)))
COMMANDS = [["call", "--method", rpc] for rpc in ADMIN_RPCS] + [
    ["profiles"],
    ["issue", "--service", "video", "--region", "eu-west"],
    ["update", "--cpt", "a" * 26, "--service", "video", "--region", "us-east"],
    ["invalidate", "--cpt", "a" * 26],
]


def run_ppectl(port, *args, env=None):
    full_env = dict(os.environ)
    full_env.pop("PPE_TOKEN", None)
    full_env.update(env or {})
    return subprocess.run([PPECTL, "--server", f"127.0.0.1:{port}", "--timeout-ms", "3000",
                           *args], capture_output=True, text=True, timeout=30, env=full_env)


class AdminAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ppe-sec-")
        cls.pki = Pki(os.path.join(cls.tmp, "pki"))
        cls.ops = cls.pki.client("ops", "ppe-ops")
        cls.intruder = cls.pki.client("intruder", "intruder")
        cls.rogue = cls.pki.client("rogue", "ppe-ops", ca="rogue-ca")  # right name, wrong CA

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_ppectl_knows_every_admin_rpc(self):
        self.assertGreaterEqual(len(ADMIN_RPCS), 7)
        r = subprocess.run([PPECTL, "methods"], capture_output=True, text=True, timeout=10)
        self.assertEqual(sorted(r.stdout.split()), ADMIN_RPCS)

    def assertRefused(self, result, code):
        self.assertEqual(result.returncode, 1, result)
        self.assertIn(f"ppectl: {code}", result.stderr)

    def assertDnsWorks(self, stack):
        tagged = stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
        answer = stack.query(tagged["hostname"])
        self.assertEqual(answer.status, "NOERROR", answer)
        self.assertTrue(answer.addresses(), answer)
        untagged = stack.query(f"video.{ZONE}", subnet="198.51.100.0/24")
        self.assertEqual(untagged.status, "NOERROR", untagged)
        self.assertTrue(untagged.addresses(), untagged)
        self.assertEqual(stack.query(ZONE, "SOA").status, "NOERROR")
        # Logs name the profile by its fingerprint, never by the tag.
        for name in ("ppe-server", "ppe-backend"):
            with open(os.path.join(stack.dir, name + ".log")) as f:
                log = f.read()
            self.assertNotIn(tagged["cpt"], log.lower(), name)
        with open(os.path.join(stack.dir, "ppe-server.log")) as f:
            self.assertIn(tagged["fingerprint"], f.read())

    def test_mtls(self):
        p = self.pki
        admin_port = free_port()
        conf = f"""
admin_listen: "127.0.0.1:{admin_port}"
admin_auth {{
  mode: "mtls"
  tls_cert_file: "{p.server[0]}"
  tls_key_file: "{p.server[1]}"
  client_ca_file: "{p.path('ca.pem')}"
  allowed_client_names: "ppe-ops"
  allowed_client_names: "origin-1"
}}
"""
        ca = ["--tls-ca", p.path("ca.pem")]
        ops = ca + ["--tls-cert", self.ops[0], "--tls-key", self.ops[1]]
        with Stack(extra_ppe_conf=conf, admin_port=admin_port, ppectl_args=ops) as stack:
            # The allowed certificate works, also with an explicit server name.
            self.assertEqual(stack.ppectl("profiles").returncode, 0)
            named = run_ppectl(admin_port, *ops, "--tls-server-name", "ppe-admin.test", "vms")
            self.assertEqual(named.returncode, 0, named.stderr)
            self.assertDnsWorks(stack)

            # A certificate from the right CA with another name: every call denied.
            intruder = ca + ["--tls-cert", self.intruder[0], "--tls-key", self.intruder[1]]
            for cmd in COMMANDS:
                with self.subTest(cmd=cmd):
                    r = run_ppectl(admin_port, *intruder, *cmd)
                    self.assertRefused(r, "PERMISSION_DENIED")
                    self.assertIn("intruder", r.stderr)

            # No client certificate, one from another CA, or no TLS: the handshake fails.
            for args in (ca, ca + ["--tls-cert", self.rogue[0], "--tls-key", self.rogue[1]], []):
                with self.subTest(args=args):
                    self.assertRefused(run_ppectl(admin_port, *args, "profiles"), "UNAVAILABLE")
            # The server is verified too: a client trusting another CA refuses it.
            wrong_ca = ["--tls-ca", p.path("rogue-ca.pem"), "--tls-cert", self.ops[0],
                        "--tls-key", self.ops[1]]
            self.assertRefused(run_ppectl(admin_port, *wrong_ca, "profiles"), "UNAVAILABLE")

            # Admin is not served on the Resolver port at all.
            self.assertRefused(run_ppectl(stack.grpc_port, "profiles"), "UNIMPLEMENTED")

    def write_token_file(self, mode=0o600):
        path = os.path.join(self.tmp, "admin-tokens")
        with open(path, "w") as f:
            f.write("# ops\n" + TOKEN + "\n")
        os.chmod(path, mode)
        return path

    def test_token(self):
        token_file = self.write_token_file()
        admin_port = free_port()
        conf = f"""
admin_listen: "127.0.0.1:{admin_port}"
admin_auth {{ mode: "token" token_file: "{token_file}" }}
"""
        with Stack(extra_ppe_conf=conf, admin_port=admin_port,
                   ppectl_args=["--token-file", token_file]) as stack:
            self.assertEqual(stack.ppectl("profiles").returncode, 0)
            by_env = run_ppectl(admin_port, "vms", env={"PPE_TOKEN": TOKEN})
            self.assertEqual(by_env.returncode, 0, by_env.stderr)
            self.assertDnsWorks(stack)

            wrong = os.path.join(self.tmp, "wrong-token")
            with open(wrong, "w") as f:
                f.write(TOKEN[:-1] + "x\n")
            for cmd in COMMANDS:
                for auth in (["--token-file", wrong], [],
                             ["--token-file", token_file, "--tls-ca", self.pki.path("ca.pem")]):
                    with self.subTest(cmd=cmd, auth=auth):
                        r = run_ppectl(admin_port, *auth, *cmd)
                        # The last: the right token, but TLS to a plaintext port.
                        self.assertRefused(r, "UNAVAILABLE" if "--tls-ca" in auth
                                           else "UNAUTHENTICATED")
            # The right token passes authentication on a call that changes state.
            r = run_ppectl(admin_port, "--token-file", token_file, "update", "--cpt", "a" * 26,
                           "--service", "video", "--region", "us-east")
            self.assertNotIn("UNAUTHENTICATED", r.stderr)
            self.assertNotIn("PERMISSION_DENIED", r.stderr)
            self.assertRefused(run_ppectl(stack.grpc_port, "--token-file", token_file, "profiles"),
                               "UNIMPLEMENTED")
            with open(os.path.join(stack.dir, "ppe-server.log")) as f:
                log = f.read()
            self.assertIn("admin call refused", log)
            self.assertNotIn(TOKEN[:-1], log)  # neither the token nor the wrong one

    def test_token_over_tls(self):
        p = self.pki
        token_file = self.write_token_file()
        admin_port = free_port()
        conf = f"""
admin_listen: "127.0.0.1:{admin_port}"
admin_auth {{
  mode: "token" token_file: "{token_file}"
  tls_cert_file: "{p.server[0]}" tls_key_file: "{p.server[1]}"
}}
"""
        tls = ["--tls-ca", p.path("ca.pem")]
        stack = Stack(extra_ppe_conf=conf, admin_port=admin_port,
                      ppectl_args=tls + ["--token-file", token_file])
        try:
            stack.start_ppe()  # admin only: no pdns needed
            self.assertEqual(stack.ppectl("profiles").returncode, 0)
            self.assertRefused(run_ppectl(admin_port, *tls, "profiles"), "UNAUTHENTICATED")
            self.assertRefused(run_ppectl(admin_port, "--token-file", token_file, "profiles"),
                               "UNAVAILABLE")  # plaintext to a TLS port
        finally:
            stack.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
