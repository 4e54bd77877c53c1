"""etcd member loss under two ppe-server replicas on a real 3-member etcd,
each behind its own pdns_server + ppe-backend (label `fault`). pdns's packet
cache is off, so every answer comes from the plugin and the replicas.

- One of three (a follower, then the raft leader) killed with kill -9 while
  both pdns are flooded: registrations (ppectl issue) and the allocation of a
  VM for each new profile go on, no SERVFAIL.
- Two of three killed: no quorum. ppectl issue fails with an error naming
  etcd within its deadline; known profiles keep their VM address (each
  replica's index and the plugin's table), names without a VM get the
  fallback, no SERVFAIL at either pdns. The two members restart on their data
  dirs: a leader again, `ppectl status` clean on both replicas, every profile
  acknowledged before the outage at the same address, the profiles left
  without a VM get one, one VM per profile and no address twice, both
  replicas' VM lists equal."""

import json
import os
import shutil
import re
import sys
import tempfile
import threading
import time
import unittest
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_harness import (FALLBACK, EtcdCluster, metrics, replica_stack,  # noqa: E402
                             udp_flood, wait_until)

TTL_S = 2
SERVFAIL = 2


def has_vm(stack, host):
    return stack.query(host).addresses() not in ([], [FALLBACK])


class DnsWatch:
    """Floods both pdns with the given names in a loop (raw UDP) until stopped
    and counts the rcodes; names can be added while it runs."""

    def __init__(self, stacks, names):
        self.stacks = stacks
        self.names = list(names)
        self.counts = Counter()
        self.rounds = 0
        self.mu = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def add(self, name):
        with self.mu:
            self.names.append(name)

    def run(self):
        while not self.stop.is_set():
            with self.mu:
                names = list(self.names)
            for s in self.stacks:
                got = udp_flood(s.dns_port, names, window=16)
                with self.mu:
                    self.counts.update(got)
            self.rounds += 1
            time.sleep(0.05)

    def close(self):
        self.stop.set()
        self.thread.join()
        return dict(self.counts)


class Replicas(unittest.TestCase):
    """Two replicas on a 3-member etcd, pdns packet caches off."""

    def setUp(self):
        self.etcd = EtcdCluster(3)
        self.keys = keys = tempfile.mkdtemp(prefix="ppe-keys-")
        self.key_file = os.path.join(keys, "cpt-keys")
        self.stacks = []
        try:
            for _ in range(2):
                s = replica_stack(self.etcd, self.key_file, conf={"ttl_s": TTL_S})
                s.set_pdns_option("cache-ttl=0")  # every answer from the plugin
                self.stacks.append(s.start())
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        for s in self.stacks:
            s.close()
        self.etcd.close()
        shutil.rmtree(self.keys, ignore_errors=True)

    def issue(self, stack, device, *extra):
        began = time.time()
        r = stack.ppectl("issue", "--service", "video", "--region", "eu-west", "--device",
                         device, "--json", *extra)
        return r, time.time() - began

    def issue_ok(self, stack, device):
        r, _ = self.issue(stack, device)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def allocated(self, names):
        """{name: address} once each name has a VM answer through both pdns."""
        out = {}
        for name in names:
            for s in self.stacks:
                wait_until(f"a VM answer for {name} at :{s.dns_port}",
                           lambda s=s: has_vm(s, name), timeout=30)
            addrs = {tuple(s.query(name).addresses()) for s in self.stacks}
            self.assertEqual(len(addrs), 1, f"{name}: the pdns disagree: {addrs}")
            out[name] = addrs.pop()
        return out

    def check_vms(self, profiles):
        """Both replicas list the same VMs: exactly one per profile that was
        allocated, no address twice, none for a profile the registry lacks."""
        a, b = self.stacks
        wait_until("the same VMs on both replicas",
                   lambda: sorted(v["name"] for v in a.vms()) ==
                   sorted(v["name"] for v in b.vms()), timeout=20)
        vms = [v for v in a.vms() if v.get("cpt")]
        known = {p["cpt"] for p in a.ppectl_json("profiles").get("profiles", [])}
        per_profile = Counter(v["cpt"] for v in vms)
        self.assertTrue(set(per_profile) <= known, f"a VM of no profile: {vms}")
        self.assertTrue(set(profiles) <= set(per_profile), (profiles, per_profile))
        self.assertEqual(max(per_profile.values()), 1, f"a profile with two VMs: {per_profile}")
        ips = Counter(v["ip"] for v in a.vms())
        self.assertEqual(max(ips.values()), 1, f"an address twice: {ips}")
        return vms


class OneMemberLost(Replicas):
    def one_member_lost(self, raft_leader):
        a, b = self.stacks
        before = [self.issue_ok(s, f"before-{i}") for i, s in enumerate((a, b, a, b))]
        addresses = self.allocated([p["hostname"] for p in before])
        watch = DnsWatch(self.stacks, list(addresses))
        try:
            wait_until("a raft leader", lambda: self.etcd.raft_leader() is not None, timeout=10)
            leader = self.etcd.raft_leader()
            victim = leader if raft_leader else (leader + 1) % 3
            killed = time.time()
            self.etcd.kill(victim)
            # Registrations right after the kill, alternating replicas; a write
            # caught on its way to the dead member fails (writes are not
            # retried: etcd may have applied them), the next goes elsewhere.
            issued, failures, resumed = [], [], None
            for i in range(8):
                s = self.stacks[i % 2]
                r, took = self.issue(s, f"after-{i}")
                if r.returncode != 0:
                    failures.append((round(time.time() - killed, 2), r.stderr.strip()))
                    self.assertLess(time.time() - killed, 10, f"writes did not resume: {failures}")
                    continue
                if resumed is None:
                    resumed = time.time() - killed
                issued.append((json.loads(r.stdout), took))
            self.assertGreaterEqual(len(issued), 6, f"registrations failed: {failures}")
            slowest = max(t for _, t in issued)
            names = [p["hostname"] for p, _ in issued]
            for n in names:
                watch.add(n)
            began = time.time()
            new = self.allocated(names)  # the first query allocates the VM
            allocation = time.time() - began
            # The profiles from before keep their address.
            for name, address in addresses.items():
                for s in self.stacks:
                    self.assertEqual(tuple(s.query(name).addresses()), address, name)
        finally:
            counts = watch.close()
        self.assertNotIn(SERVFAIL, counts, f"SERVFAIL while a member was down: {counts}")
        self.check_vms([p["cpt"] for p in before] + [p["cpt"] for p, _ in issued])
        which = "raft leader" if raft_leader else "follower"
        print(f"etcd {which} m{victim} kill -9: first registration OK {resumed:.2f} s after "
              f"the kill, {len(issued)}/8 issued ({len(failures)} failed: {failures}), slowest "
              f"issue {slowest:.2f} s; {len(new)} new profiles got VMs through both pdns in "
              f"{allocation:.1f} s; rcodes during it {counts} over {watch.rounds} rounds",
              flush=True)

    def test_kill_9_of_a_follower_member_writes_go_on(self):
        self.one_member_lost(raft_leader=False)

    def test_kill_9_of_the_raft_leader_member_writes_go_on(self):
        self.one_member_lost(raft_leader=True)


class NoQuorum(Replicas):
    def test_two_of_three_lost_then_back(self):
        a, b = self.stacks
        before = [self.issue_ok(s, f"before-{i}") for i, s in enumerate((a, b) * 3)]
        addresses = self.allocated([p["hostname"] for p in before])
        # Profiles issued but never queried: no VM yet when quorum goes.
        pending = [self.issue_ok(s, f"pending-{i}") for i, s in enumerate((a, b))]
        pending_names = [p["hostname"] for p in pending]
        untagged = ["video.cdn.example.test"]

        wait_until("a raft leader", lambda: self.etcd.raft_leader() is not None, timeout=10)
        before_m = [metrics(s) for s in self.stacks]
        for m in before_m:
            self.assertEqual(m.get("ppe_etcd_reachable"), 1, m)
        self.assertEqual(sum(m.get("ppe_cluster_leader", 0) for m in before_m), 1, before_m)
        leader = self.etcd.raft_leader()
        victims = [leader, (leader + 1) % 3]
        lost = time.time()
        for v in victims:
            self.etcd.kill(v)
        watch = DnsWatch(self.stacks, list(addresses) + pending_names + untagged)
        try:
            # Registrations stop with an error naming etcd. The first write
            # after the loss waits out the etcd call deadline (5 s; another
            # write may hold the registry's write lock for as long); once etcd
            # went unanswered the store gives up after 1 s, so ppectl's default
            # 5 s deadline gets the server's reason.
            refused = []
            for i, s in enumerate((a, b)):
                for j, extra in enumerate((("--timeout-ms", "15000"), ())):
                    r, took = self.issue(s, f"outage-{i}-{j}", *extra)
                    refused.append((took, r.stderr.strip()))
                    self.assertNotEqual(r.returncode, 0, r.stdout)
                    self.assertIn("no quorum", r.stderr, r.stderr)
                    self.assertLess(took, 15.5 if extra else 5.0)
            # Known profiles: their VM address; the rest: the fallback.
            for s in self.stacks:
                for name, address in addresses.items():
                    self.assertEqual(tuple(s.query(name).addresses()), address, name)
                for name in pending_names:
                    answer = s.query(name)
                    self.assertEqual(answer.addresses(), [FALLBACK], answer)
            # Status still answers, from what the replica holds, and says
            # that etcd is unreachable and the cluster view is stale.
            asked = time.time()
            status = a.ppectl("status")
            status_took = time.time() - asked
            self.assertEqual(status.returncode, 0, status.stderr)
            self.assertLess(status_took, 3.0)
            self.assertIn("ETCD UNREACHABLE since", status.stdout, status.stdout)
            self.assertIn("(STALE: last read", status.stdout, status.stdout)
            st = b.ppectl_json("status")
            self.assertGreater(int(st["etcd_unreachable_since_unix_ms"]), 0, st)
            self.assertLessEqual(int(st["etcd_unreachable_since_unix_ms"]) / 1000, lost + 0.5, st)
            self.assertTrue(st["cluster_view_stale"], st)
            self.assertTrue(st["leader"], st)  # the last one known
            self.assertEqual(len(st["replicas"]), 2, st)
            self.assertGreaterEqual(st["profiles"], len(before) + len(pending), st)
            self.assertGreater(int(st["watched_revision"]), 0, st)
            # The metrics say so too: etcd unreachable, its unanswered calls counted.
            during_m = [metrics(s) for s in self.stacks]
            for m, m0 in zip(during_m, before_m):
                self.assertEqual(m.get("ppe_etcd_reachable"), 0, m)
                self.assertGreater(m["ppe_etcd_errors_total"], m0["ppe_etcd_errors_total"], m)
            outage = time.time() - lost
            logged = Counter()
            for s in self.stacks:
                with open(os.path.join(s.dir, "ppe-server.log"), errors="replace") as f:
                    for line in f.read().splitlines():
                        if "warn" in line or "error" in line:
                            logged[re.sub(r"[0-9a-f]{8,}|\d+", "N", line.split("] ")[-1])[:120]] += 1
        finally:
            counts = watch.close()
        self.assertNotIn(SERVFAIL, counts, f"SERVFAIL without quorum: {counts}")
        self.assertEqual(counts.get("lost", 0), 0, counts)

        restarted = time.time()
        for v in victims:
            self.etcd.start(v)
        for v in victims:
            wait_until(f"etcd member {v} back", lambda v=v: self.etcd.healthy(v), timeout=30)
        healthy = time.time() - restarted

        def clean(s):
            st = s.ppectl("status", "--json")
            if st.returncode != 0:
                return False
            st = json.loads(st.stdout)
            reps = st.get("replicas", [])
            return (st.get("leader") and len(reps) == 2 and not st.get("cluster_view_stale") and
                    int(st.get("etcd_unreachable_since_unix_ms", 1)) == 0 and
                    sum(1 for r in reps if r.get("leader")) == 1 and
                    all(r.get("watch_lag_ms", 1e9) < 1000 for r in reps))

        for s in self.stacks:
            wait_until("a clean ppectl status", lambda s=s: clean(s), timeout=30)
        converged = time.time() - restarted
        after_m = [metrics(s) for s in self.stacks]
        for m in after_m:
            self.assertEqual(m.get("ppe_etcd_reachable"), 1, m)
        self.assertEqual(a.ppectl_json("status")["leader"], b.ppectl_json("status")["leader"])
        # Writes again, and everything from before at the same address.
        again = self.issue_ok(b, "after")
        for name, address in addresses.items():
            for s in self.stacks:
                self.assertEqual(tuple(s.query(name).addresses()), address, name)
        fresh = self.allocated(pending_names + [again["hostname"]])
        vms = self.check_vms([p["cpt"] for p in before + pending] + [again["cpt"]])
        errors = [tuple(int(m["ppe_etcd_errors_total"]) for m in ms)
                  for ms in zip(before_m, during_m, after_m)]
        text = a.ppectl("status").stdout
        print(text[text.index("replica "):], flush=True)
        print(f"etcd 2 of 3 killed: ppectl issue refused in "
              f"{', '.join(f'{t:.2f} s' for t, _ in refused)} (first/default deadline, replica "
              f"a then b; {refused[-1][1]!r}); status during the outage: rc "
              f"{status.returncode} in {status_took:.2f} s; "
              f"{len(addresses)} known names kept their address, {len(pending_names)} pending "
              f"ones got the fallback; rcodes {counts} over {watch.rounds} rounds in "
              f"{outage:.1f} s; restart: members healthy {healthy:.1f} s, status clean "
              f"{converged:.1f} s after it; {len(fresh)} pending profiles got VMs; "
              f"{len(vms)} VMs, one per profile; ppe_etcd_errors_total before/during/after "
              f"the outage: {errors}", flush=True)
        text = status.stdout
        print("ppectl status during the outage:\n" + text[text.index("ETCD"):], flush=True)
        print("ppe-server warnings during the outage (both replicas, numbers as N):", flush=True)
        for line, n in logged.most_common(6):
            print(f"  {n} x {line}", flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
