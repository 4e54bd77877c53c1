"""ppe-server with its registry in a real etcd (Debian etcd-server), through
the end-to-end harness: a tagged name issued by ppectl resolves through
pdns_server, and resolves to the same address after ppe-server restarts (the
registry comes back from etcd, not from a local file)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Stack, free_port, wait_until  # noqa: E402

FALLBACK = "192.0.2.10"


class Etcd:
    """One etcd member on free loopback ports in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ppe-etcd-")
        self.client_port = free_port()
        peer = f"http://127.0.0.1:{free_port()}"
        client = f"http://127.0.0.1:{self.client_port}"
        log = open(os.path.join(self.dir, "etcd.log"), "ab")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "m0", "--data-dir", os.path.join(self.dir, "m0.etcd"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"m0={peer}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_until("etcd", self.healthy, timeout=20)

    def healthy(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client_port}/health",
                                        timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class EtcdStore(unittest.TestCase):
    def test_tagged_name_resolves_and_survives_a_restart(self):
        etcd = Etcd()
        try:
            conf = (f'registry {{ store: ETCD etcd_endpoints: "127.0.0.1:{etcd.client_port}" '
                    f'etcd_prefix: "/ppe-e2e/" }}\n')
            with Stack(extra_ppe_conf=conf) as stack:
                status = stack.ppectl_json("status")
                issued = stack.ppectl_json("issue", "--service", "video", "--region", "eu-west")
                host = issued["hostname"]
                first = stack.query(host).addresses()
                wait_until("a VM answer",
                           lambda: stack.query(host).addresses() not in ([], [FALLBACK]))
                address = stack.query(host).addresses()
                self.assertNotIn(FALLBACK, address, first)
                self.assertFalse(os.path.exists(os.path.join(stack.dir, "state", "registry.db")),
                                 "the SQLite store was used")

                stack.stop("ppe-server")
                stack.start_ppe()
                after = stack.ppectl_json("status")
                self.assertEqual(after["last_reconcile"]["failed"], 0, after)
                self.assertEqual(stack.query(host).addresses(), address)
                print(f"etcd store: {host} -> {address[0]} before and after a ppe-server "
                      f"restart (status before: {status.get('vms')} VMs, after: "
                      f"{after.get('vms')})", flush=True)
        finally:
            etcd.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
