"""TLS to etcd (label `fault`): a CA, a server and a client certificate made
with openssl in the test's temporary directory; etcd serves clients over TLS
only and requires a client certificate signed by the CA
(--client-cert-auth). A ppe-server with the registry's etcd TLS options
(etcd_ca_file, etcd_cert_file, etcd_key_file) registers and resolves through
pdns; one that trusts another CA, or has no client certificate, fails at
start with an error naming etcd."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_harness import FALLBACK, EtcdCluster, replica_stack, wait_until  # noqa: E402
from harness import PPE_SERVER  # noqa: E402


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d, name):
    key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN={name}")
    return cert, key


def make_cert(d, name, ca, usage):
    """A certificate for 127.0.0.1 signed by `ca` (cert, key); usage: the
    extendedKeyUsage ("serverAuth,clientAuth" or "clientAuth")."""
    key, csr, cert = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-out", cert, "-days", "1", "-extfile", ext)
    return cert, key


class EtcdTls(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ppe-etcd-tls-")
        self.ca = make_ca(self.dir, "ca")
        self.other_ca = make_ca(self.dir, "other-ca")
        server = make_cert(self.dir, "etcd-server", self.ca, "serverAuth,clientAuth")
        self.client = make_cert(self.dir, "ppe-client", self.ca, "clientAuth")
        self.etcd = EtcdCluster(1, tls=(self.ca[0], *server))
        self.keys = keys = tempfile.mkdtemp(prefix="ppe-keys-")
        self.key_file = os.path.join(keys, "cpt-keys")

    def tearDown(self):
        self.etcd.close()
        shutil.rmtree(self.keys, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def registry_tls(self, ca, cert=None):
        fields = f'etcd_ca_file: "{ca}"'
        if cert:
            fields += f' etcd_cert_file: "{cert[0]}" etcd_key_file: "{cert[1]}"'
        return fields

    def test_a_replica_registers_and_resolves_over_tls(self):
        with replica_stack(self.etcd, self.key_file,
                           conf={"registry": self.registry_tls(self.ca[0], self.client)}) as s:
            issued = s.ppectl_json("issue", "--service", "video", "--region", "eu-west")
            self.assertTrue(issued["created"], issued)
            wait_until("a VM answer", lambda: s.query(issued["hostname"]).addresses() not in
                       ([], [FALLBACK]), timeout=20)
            # The profile is in etcd, read back over TLS with the client certificate.
            r = self.etcd.etcdctl("get", "--prefix", "--keys-only", "/ppe-cluster//ppe/profiles/")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(issued["cpt"], r.stdout)
            status = s.ppectl_json("status")
            self.assertEqual(status.get("leader"), status.get("replica_id"), status)
            print(f"TLS to etcd: issued {issued['fingerprint']}, resolved to "
                  f"{s.query(issued['hostname']).addresses()} through pdns, profile read back "
                  f"with etcdctl --cacert/--cert/--key; leader {status['leader']}", flush=True)

    def start_fails(self, fields):
        s = replica_stack(self.etcd, self.key_file, conf={"registry": fields})
        try:
            began = time.time()
            with open(os.path.join(s.dir, "ppe-server.log"), "wb") as log:
                r = subprocess.run([PPE_SERVER, "--config", os.path.join(s.dir, "ppe.conf")],
                                   stdout=log, stderr=subprocess.STDOUT, timeout=60)
            took = time.time() - began
            with open(os.path.join(s.dir, "ppe-server.log"), errors="replace") as f:
                out = f.read()
        finally:
            s.close()
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn("etcd", out)
        last = [l for l in out.splitlines() if "etcd" in l][-1]
        return took, last.split("] ")[-1]

    def test_a_wrong_ca_or_no_client_certificate_fails_at_start(self):
        took_ca, wrong_ca = self.start_fails(self.registry_tls(self.other_ca[0], self.client))
        self.assertIn("certificate verify failed", wrong_ca)
        self.assertIn(self.other_ca[0], wrong_ca)
        took_cert, no_cert = self.start_fails(self.registry_tls(self.ca[0]))
        self.assertIn("no client certificate", no_cert)
        print(f"TLS to etcd, wrong CA: exit after {took_ca:.1f} s: {wrong_ca}\n"
              f"TLS to etcd, no client certificate: exit after {took_cert:.1f} s: {no_cert}",
              flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
