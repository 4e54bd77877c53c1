"""ppe-server refuses a bad config (admin_auth, the enum settings): a message naming the field, a
non-zero exit, and nothing created (not even state_dir)."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
sys.path.insert(0, HERE)
from harness import PPE_SERVER, ROOT, free_port  # noqa: E402
from tls_fixture import Pki  # noqa: E402


class BadAdminAuthConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ppe-badconf-")
        cls.pki = Pki(os.path.join(cls.tmp, "pki"))
        cls.tokens = {}
        for name, mode, text in [("private", 0o600, "a-long-enough-admin-token\n"),
                                 ("group", 0o640, "a-long-enough-admin-token\n"),
                                 ("world", 0o644, "a-long-enough-admin-token\n"),
                                 ("short", 0o600, "short\n"),
                                 ("empty", 0o600, "# nothing\n")]:
            path = os.path.join(cls.tmp, f"tokens-{name}")
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)
            cls.tokens[name] = path
        with open(os.path.join(ROOT, "deploy", "conf", "ppe.conf.in")) as f:
            cls.template = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def refused(self, extra, *expected):
        run = tempfile.mkdtemp(dir=self.tmp)
        conf = os.path.join(run, "ppe.conf")
        text = self.template.replace("@RUN@", run).replace(
            "@GRPC_PORT@", str(free_port())).replace("@HYPERVISOR_URI@", "test:///default")
        with open(conf, "w") as f:
            f.write(text + extra)
        r = subprocess.run([PPE_SERVER, "--config", conf], capture_output=True, text=True,
                           timeout=20)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        for e in expected:
            self.assertIn(e, r.stderr)
        self.assertEqual(sorted(os.listdir(run)), ["ppe.conf"], "something was created")
        return r.stderr

    def test_unknown_mode(self):
        self.refused('admin_auth { mode: "password" }',
                     "admin_auth.mode: unknown mode 'password'")

    def test_token_or_mtls_without_admin_listen(self):
        self.refused(f'admin_auth {{ mode: "token" token_file: "{self.tokens["private"]}" }}',
                     "admin_listen: is required with admin_auth.mode 'token'")
        self.refused('admin_auth { mode: "mtls" }',
                     "admin_listen: is required with admin_auth.mode 'mtls'")

    def test_token_file_missing_unreadable_or_public(self):
        listen = f'admin_listen: "127.0.0.1:{free_port()}"\n'
        self.refused(listen + 'admin_auth { mode: "token" }', "admin_auth.token_file: is required")
        missing = os.path.join(self.tmp, "no-such-file")
        self.refused(listen + f'admin_auth {{ mode: "token" token_file: "{missing}" }}',
                     f"admin_auth.token_file: {missing}: No such file")
        for name, mode in (("group", "0640"), ("world", "0644")):
            self.refused(listen + f'admin_auth {{ mode: "token" token_file: "{self.tokens[name]}" }}',
                         "admin_auth.token_file:", f"accessible by group or others (mode {mode})")
        self.refused(listen + f'admin_auth {{ mode: "token" token_file: "{self.tokens["short"]}" }}',
                     "admin_auth.token_file:", "token shorter than 16 characters")
        self.refused(listen + f'admin_auth {{ mode: "token" token_file: "{self.tokens["empty"]}" }}',
                     "admin_auth.token_file:", "holds no token")

    def test_mtls_without_or_with_bad_certificates(self):
        p = self.pki
        listen = f'admin_listen: "127.0.0.1:{free_port()}"\n'
        self.refused(listen + 'admin_auth { mode: "mtls" }', "admin_auth.tls_cert_file:")
        self.refused(listen + f'admin_auth {{ mode: "mtls" tls_cert_file: "{p.server[0]}" '
                     f'tls_key_file: "{p.server[1]}" }}', "admin_auth.client_ca_file:")
        # A key that is not the certificate's, a certificate file that is a key.
        self.refused(listen + f'admin_auth {{ mode: "mtls" tls_cert_file: "{p.server[0]}" '
                     f'tls_key_file: "{p.path("ca.key")}" client_ca_file: "{p.path("ca.pem")}" }}',
                     "admin_auth.tls_key_file: does not match")
        self.refused(listen + f'admin_auth {{ mode: "mtls" tls_cert_file: "{p.server[1]}" '
                     f'tls_key_file: "{p.server[1]}" client_ca_file: "{p.path("ca.pem")}" }}',
                     "admin_auth.tls_cert_file:", "holds no PEM certificate")
        missing = os.path.join(self.tmp, "no-ca.pem")
        self.refused(listen + f'admin_auth {{ mode: "mtls" tls_cert_file: "{p.server[0]}" '
                     f'tls_key_file: "{p.server[1]}" client_ca_file: "{missing}" }}',
                     f"admin_auth.client_ca_file: cannot read {missing}")

    def test_settings_the_mode_would_ignore(self):
        self.refused(f'admin_auth {{ mode: "none" token_file: "{self.tokens["private"]}" }}',
                     "admin_auth.token_file: is only used with mode 'token'")
        self.refused('admin_auth { allowed_client_names: "ops" }',
                     "admin_auth.allowed_client_names: is only used with mode 'mtls'")

    def test_enum_settings_written_as_strings(self):
        # scaler.mode and registry.store were strings: an old config is told how
        # to write the value now.
        self.refused('scaler { mode: "reactive" }',
                     "scaler.mode is an enum, written without quotes: mode: REACTIVE")
        self.refused('registry { store: "etcd" }',
                     "registry.store is an enum, written without quotes: store: ETCD")
        self.refused("registry { store: CASSANDRA }", 'Unknown enumeration value of "CASSANDRA"')
        self.refused("registry { store: ETCD }", "registry.etcd_endpoints: needed for store ETCD")


if __name__ == "__main__":
    unittest.main(verbosity=2)
