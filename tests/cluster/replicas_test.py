"""Two ppe-server replicas on one real 3-member etcd, each behind its own
pdns_server + ppe-backend (tests/cluster/cluster_harness.py):

- a profile issued on one replica is known to the other (its registry index is
  fed by an etcd watch, reads never touch etcd);
- many concurrent queries for the same new tagged names through both pdns
  servers make both replicas race to allocate: the cluster-wide single flight
  (an etcd transaction on a lease-bound key per (service, CPT)) gives exactly
  one VM per profile and no address twice, and both replicas answer it;
- `ppectl status` on either replica shows the leader and both replicas with
  their watch lag."""

import os
import sys
import threading
import time
import unittest
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_harness import (FALLBACK, EtcdCluster, replica_stack, udp_flood,  # noqa: E402
                             wait_until)
from cluster_harness import key_file as shared_key_file  # noqa: E402

PROFILES = 24
QUERIES_PER_NAME_PER_PDNS = 8


class Replicas(unittest.TestCase):
    def test_two_replicas_race_for_new_profiles_and_create_one_vm_each(self):
        etcd = EtcdCluster(3)
        key_file = shared_key_file()
        try:
            with replica_stack(etcd, key_file) as a, replica_stack(etcd, key_file) as b:
                hosts, cpts = [], []
                for i in range(PROFILES):
                    issued = (a if i % 2 == 0 else b).ppectl_json(
                        "issue", "--service", "video", "--region", "eu-west", "--device",
                        f"device-{i}")
                    self.assertTrue(issued["created"], issued)
                    hosts.append(issued["hostname"])
                    cpts.append(issued["cpt"])
                # Each replica's index learns the other's profiles from its watch.
                for stack in (a, b):
                    wait_until("profiles on both replicas", lambda s=stack: {
                        p["cpt"] for p in s.ppectl_json("profiles").get("profiles", [])
                    } >= set(cpts), timeout=10)

                # The storm: every name several times through both pdns at once
                # (raw UDP, 64 in flight per pdns), so both replicas get Resolve
                # for the same new CPTs at the same time.
                rcodes = {}
                names = [h for h in hosts for _ in range(QUERIES_PER_NAME_PER_PDNS)]
                go = threading.Barrier(2)

                def flood(stack):
                    go.wait()
                    rcodes[stack.dns_port] = udp_flood(stack.dns_port, names)

                floods = [threading.Thread(target=flood, args=(s,)) for s in (a, b)]
                began = time.time()
                for t in floods:
                    t.start()
                for t in floods:
                    t.join()
                for counts in rcodes.values():
                    self.assertNotIn(2, counts, f"SERVFAIL during the storm: {rcodes}")
                answers = {}
                for host in hosts:
                    for stack in (a, b):
                        wait_until(f"a VM answer for {host}", lambda s=stack: (
                            s.query(host).addresses() not in ([], [FALLBACK])), timeout=20)
                        answers.setdefault(host, set()).update(stack.query(host).addresses())
                took = time.time() - began
                threads = names * 2

                self.assertEqual(set(answers), set(hosts), "every name got a VM answer")
                # Both replicas' indexes converge on the same VMs.
                wait_until("the same VMs on both replicas",
                           lambda: sorted(v["name"] for v in a.vms()) ==
                           sorted(v["name"] for v in b.vms()), timeout=10)
                vms = a.vms()
                per_profile = Counter(v["cpt"] for v in vms if v.get("cpt"))
                self.assertEqual(set(per_profile), set(cpts), vms)
                self.assertEqual(max(per_profile.values()), 1,
                                 f"a profile with more than one VM: {per_profile}")
                ips = Counter(v["ip"] for v in vms)
                self.assertEqual(max(ips.values()), 1, f"an address twice: {ips}")
                by_cpt = {v["cpt"]: v["ip"] for v in vms}
                for host, cpt in zip(hosts, cpts):
                    self.assertEqual(answers[host], {by_cpt[cpt]}, host)

                status = a.ppectl_json("status")
                replicas = status.get("replicas", [])
                self.assertEqual(len(replicas), 2, status)
                self.assertEqual(sum(1 for r in replicas if r.get("leader")), 1, status)
                self.assertTrue(status.get("leader"), status)
                text = b.ppectl("status").stdout
                print(text[text.index("replica "):], flush=True)
                self.assertIn("LEADER", text)
                self.assertIn("watch lag", text)
                lags = [round(r.get("watch_lag_ms", 0), 2) for r in replicas]
                print(f"replicas: {PROFILES} new profiles, {len(threads)} queries at once "
                      f"through 2 pdns -> {len(vms)} VMs, {len(ips)} distinct addresses, "
                      f"all answered in {took:.1f} s; leader {status['leader']}; watch lag "
                      f"(ms) {lags}", flush=True)
        finally:
            etcd.close()

    def test_a_key_rotation_reaches_every_replica_without_a_restart(self):
        etcd = EtcdCluster(1)
        key_file = shared_key_file()
        try:
            with replica_stack(etcd, key_file) as a, replica_stack(etcd, key_file) as b:
                attrs = ["--service", "video", "--region", "eu-west", "--device", "tv"]
                old = a.ppectl_json("issue", *attrs)
                self.assertEqual(old["cpt"], b.ppectl_json("issue", *attrs)["cpt"])
                self.assertTrue(old["cpt"].startswith("a"), old)  # key version 0
                # The operator rotates: a new key version in the file every replica reads.
                with open(key_file, "a") as f:
                    f.write("1 " + os.urandom(32).hex() + "\n")
                attrs2 = attrs[:-1] + ["phone"]
                wait_until("version 1 on a", lambda: a.ppectl_json("issue", *attrs2)["cpt"]
                           .startswith("b"), timeout=10)
                new = a.ppectl_json("issue", *attrs2)
                wait_until("version 1 on b", lambda: b.ppectl_json("issue", *attrs2)["cpt"] ==
                           new["cpt"], timeout=10)
                # Both tags resolve through both replicas' pdns: the new one verifies
                # on b, the old (previous version) one still does.
                for tag in (old, new):
                    for stack in (a, b):
                        wait_until(f"{tag['hostname']} via {stack.dns_port}", lambda s=stack: (
                            s.query(tag["hostname"]).addresses() not in ([], [FALLBACK])),
                            timeout=20)
                print(f"key rotation: version 0 tag {old['cpt'][:6]}... and version 1 tag "
                      f"{new['cpt'][:6]}... issued alike and resolved on both replicas, no "
                      f"restart", flush=True)
        finally:
            etcd.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
