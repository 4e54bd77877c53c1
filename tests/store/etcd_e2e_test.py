"""ppe-server with its registry in a real etcd (Debian etcd-server), through
the end-to-end harness: a tagged name issued by ppectl resolves through
pdns_server, and resolves to the same address after ppe-server restarts (the
registry comes back from etcd, not from a local file)."""

import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from cluster_harness import FALLBACK, EtcdCluster, Stack, wait_until  # noqa: E402


class EtcdStore(unittest.TestCase):
    def test_tagged_name_resolves_and_survives_a_restart(self):
        etcd = EtcdCluster(members=1)
        try:
            conf = (f'registry {{ store: ETCD etcd_endpoints: "{etcd.endpoints()[0]}" '
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
