"""Host loss under replicas (issue 16's fault test), on real components: one
real etcd, two ppe-server replicas sharing it, each behind its own
pdns_server + ppe-backend whose plugin round-robins over both replicas, and
two libvirt hosts that are private libvirtd daemons running LXC containers
(deploy/lxc/setup.sh, each with its own bridge on a free 10.213.X.0/24):
eu-west-1 (host A) and us-east-1 (host B). The replicas run the quick
start's cluster config (deploy/conf/ppe-cluster.conf.in) with a short host
grace period.

1. eu-west profiles resolve through both pdns to containers on A that answer
   HTTP; a us-east profile to one on B.
2. kill -9 of A's libvirtd (its containers keep running without it). Once a
   replica has noticed, kill -9 of the leader replica: the other one leads,
   and it is the one that moves A's profiles after the grace period. The
   same names then resolve, at both pdns, to containers on B that answer HTTP.
   The killed replica is started again (a follower that starts while A is
   down); then the replica that moved the VMs is killed too and restarted, so
   the leader when A returns is one that never knew the stale containers.
3. A's libvirtd is restarted: the leader's reconcile destroys the stale
   containers on A (the follower only waits for that), then A takes VMs again.

Throughout, a monitor queries every name at both pdns: never a SERVFAIL or a
timeout, never an empty answer or the fallback, and never one address for two names in a round
(nor, until A returns and its addresses are free again, in the whole run).
At each step the live containers on both hosts (their controllers' pid files
and live XML under the hosts' run directories, readable while a libvirtd is
dead) hold distinct addresses.

pdns's packet cache is off here (cache-ttl=0) so that every query reaches the
plugin: with it on, a moved name is answered from the cache (the old
container, which still serves) for up to cache-ttl (20 s) more.

Needs root (libvirtd, bridges, containers); exits 77 (skipped) otherwise."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cluster_harness import (FALLBACK, ROOT, EtcdCluster, Stack, share_replicas,  # noqa: E402
                             status, wait_until)
from harness import free_lxc_subnet, http_status  # noqa: E402

GRACE_S = 4
CHECK_MS = 300
TTL_S = 2
EU_PROFILES = 2
SETUP = os.path.join(ROOT, "deploy", "lxc", "setup.sh")
TEARDOWN = os.path.join(ROOT, "deploy", "lxc", "teardown.sh")


class LxcHost:
    """A libvirt host on this machine: a private libvirtd with LXC and its own
    bridge on a free 10.213.X.0/24 (deploy/lxc/setup.sh), torn down by close()."""

    def __init__(self, bridge_prefix):
        x = free_lxc_subnet(bridge_prefix)
        self.net = f"10.213.{x}"
        self.bridge = f"{bridge_prefix}{x}"
        self.run = tempfile.mkdtemp(prefix="ppe-hl-", dir="/tmp")
        self.uri = self.start()

    def start(self):
        """Starts (or restarts) the daemon; returns its libvirt URI."""
        r = subprocess.run([SETUP, self.run, self.bridge, f"{self.net}.1/24"],
                           capture_output=True, text=True,
                           env=dict(os.environ, PPE_LXC_NO_INSTALL="1"))
        if r.returncode != 0:
            raise RuntimeError(f"deploy/lxc/setup.sh {self.run} failed: {r.stderr}")
        return r.stdout.strip()

    def daemon_pid(self):
        with open(os.path.join(self.run, "libvirtd.pid")) as f:
            return int(f.read().strip())

    def live_containers(self):
        """{domain name: address} of the containers whose controller runs, from
        libvirt's LXC state files (there whether or not libvirtd runs)."""
        out = {}
        state = os.path.join(self.run, "run", "lxc")
        for f in os.listdir(state) if os.path.isdir(state) else []:
            if not f.endswith(".pid"):
                continue
            name = f[:-4]
            try:
                with open(os.path.join(state, f)) as p:
                    os.kill(int(p.read().strip()), 0)
                with open(os.path.join(state, name + ".xml")) as x:
                    m = re.search(r"<\w+:vm\b[^>]*\sip=['\"]([0-9.]+)['\"]", x.read())
            except (OSError, ValueError):
                continue
            out[name] = m.group(1) if m else None
        return out

    def domains(self):
        r = subprocess.run(["virsh", "-q", "-c", self.uri, "list", "--all", "--name"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return {d.strip() for d in r.stdout.splitlines() if d.strip()}

    def close(self):
        subprocess.run([TEARDOWN, self.run, self.bridge], capture_output=True)
        shutil.rmtree(self.run, ignore_errors=True)


def metric(stack, name, **labels):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics",
                                      timeout=2).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(
                f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class Monitor(threading.Thread):
    """Queries every name at every pdns in rounds until stopped; keeps what
    each round answered and every failure."""

    def __init__(self, stacks, names):
        super().__init__(daemon=True)
        self.stacks, self.names = stacks, names
        self.rounds = []     # (time, {(dns port, name): [addresses]})
        self.failures = []   # what was wrong, with the time
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stop.is_set():
            t = time.time()
            answers = {}
            for stack in self.stacks:
                for name in self.names:
                    a = stack.query(name, timeout=2)
                    answers[(stack.dns_port, name)] = a.addresses()
                    # During a move both the old and the new container may be
                    # answered (the old record goes once the new VM is ready).
                    if a.status != "NOERROR" or not a.addresses() or FALLBACK in a.addresses():
                        with self.lock:
                            self.failures.append(f"{t:.2f} :{stack.dns_port} {name}: {a}")
            by_address = {}
            for (_, name), addresses in answers.items():
                for address in addresses:
                    by_address.setdefault(address, set()).add(name)
            for address, names in by_address.items():
                if len(names) > 1:
                    with self.lock:
                        self.failures.append(f"{t:.2f} {address} answered for {sorted(names)}")
            with self.lock:
                self.rounds.append((t, answers))
            time.sleep(0.05)

    def names_by_address(self, until=None):
        """address -> every name it was answered for, over the rounds before `until`."""
        out = {}
        with self.lock:
            for t, answers in self.rounds:
                if until is not None and t >= until:
                    break
                for (_, name), addresses in answers.items():
                    for address in addresses:
                        out.setdefault(address, set()).add(name)
        return out


class HostLoss(unittest.TestCase):
    def setUp(self):
        self.hosts, self.stacks, self.etcd = [], [], None
        try:
            self.a = LxcHost("ppehla")
            self.hosts.append(self.a)
            self.b = LxcHost("ppehlb")
            self.hosts.append(self.b)
            self.etcd = EtcdCluster(1)
            key_file = os.path.join(self.etcd.dir, "cpt-keys")
            with open(key_file, "w") as f:
                f.write("0 " + os.urandom(32).hex() + "\n")
            os.chmod(key_file, 0o600)
            endpoints = " ".join(f'etcd_endpoints: "{e}"' for e in self.etcd.endpoints())
            for _ in range(2):
                self.stacks.append(Stack(
                    ppe_template="ppe-cluster", extra_ppe_conf="scaler { mode: OFF }\n",
                    template_vars={
                        "@KEY_FILE@": key_file, "@ETCD_ENDPOINTS@": endpoints,
                        "@EU_URI@": self.a.uri, "@EU_BRIDGE@": self.a.bridge,
                        "@EU_NET@": self.a.net, "@US_URI@": self.b.uri,
                        "@US_BRIDGE@": self.b.bridge, "@US_NET@": self.b.net},
                    conf_replace={
                        "host_grace_s: 30": f"host_grace_s: {GRACE_S} host_check_ms: {CHECK_MS}",
                        "etcd_lease_ttl_s: 2": f"etcd_lease_ttl_s: {TTL_S}"}))
            # Every plugin round-robins over every replica, as in deploy/quickstart.sh --cluster.
            share_replicas(self.stacks)
            for s in self.stacks:
                s.set_pdns_option("cache-ttl=0")
            for s in self.stacks:
                s.start()
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        for s in self.stacks:
            s.close()
        if self.etcd:
            self.etcd.close()
        for h in self.hosts:
            h.close()

    def leader(self):
        """The leader replica's Stack and the others, as every live replica sees it."""
        ids = {}
        for s in self.stacks:
            st = status(s)
            if st.get("replica_id"):
                ids[st["replica_id"]] = (s, st.get("leader"))
        leaders = {leader for _, leader in ids.values()}
        if len(leaders) != 1 or None in leaders or next(iter(leaders)) not in ids:
            return None, []
        leader = ids[next(iter(leaders))][0]
        return leader, [s for s in self.stacks if s is not leader]

    def log(self, stack):
        with open(os.path.join(stack.dir, "ppe-server.log"), errors="replace") as f:
            return f.read()

    def check_live_containers(self, when):
        live = {}
        for h in self.hosts:
            for name, ip in h.live_containers().items():
                self.assertIsNotNone(ip, f"{when}: container {name} without an address")
                self.assertNotIn(ip, live, f"{when}: {ip} held by {name} and {live.get(ip)}")
                live[ip] = name
        return live

    def resolve_all(self, names, prefix):
        """{name: address} once every name resolves at every pdns to one address
        under `prefix` (the same at all), or None."""
        out = {}
        for name in names:
            got = {tuple(s.query(name, timeout=2).addresses()) for s in self.stacks}
            if len(got) != 1:
                return None
            (addresses,) = got
            if len(addresses) != 1 or not addresses[0].startswith(prefix):
                return None
            out[name] = addresses[0]
        return out

    def test_host_loss_with_a_leader_kill_in_the_grace_period(self):
        t0 = time.time()
        p, q = self.stacks
        wait_until("a leader known to both replicas", lambda: self.leader()[0], timeout=15)
        eu = [p.ppectl_json("issue", "--service", "video", "--region", "eu-west", "--device",
                            f"tv-{i}")["hostname"] for i in range(EU_PROFILES)]
        us = q.ppectl_json("issue", "--service", "video", "--region", "us-east")["hostname"]
        before = {}
        wait_until("eu-west names on host A at both pdns", lambda: before.update(
            self.resolve_all(eu, self.a.net + ".") or {}) or len(before) == len(eu), timeout=30)
        on_b = {}
        wait_until("the us-east name on host B at both pdns", lambda: on_b.update(
            self.resolve_all([us], self.b.net + ".") or {}) or on_b, timeout=30)
        for address in list(before.values()) + list(on_b.values()):
            wait_until(f"HTTP from {address}", lambda a=address: http_status(a) == 200,
                       timeout=20)
        live = self.check_live_containers("before the host loss")
        stale = {live[a] for a in before.values()}
        self.assertEqual(len(stale), EU_PROFILES)
        print(f"set up in {time.time() - t0:.1f} s: eu-west {before} on A ({self.a.net}.0/24), "
              f"us-east {on_b} on B ({self.b.net}.0/24)", flush=True)

        first, (second,) = self.leader()
        first_id, second_id = status(first)["replica_id"], status(second)["replica_id"]
        monitor = Monitor(self.stacks, eu + [us])
        monitor.start()
        try:
            # 1. Host A's libvirtd dies; its containers keep running.
            killed = time.time()
            os.kill(self.a.daemon_pid(), signal.SIGKILL)
            wait_until("a replica notices host A is down", lambda: any(
                metric(s, "ppe_host_up", host="eu-west-1") == 0 for s in self.stacks),
                timeout=10)
            noticed = time.time() - killed
            # 2. The leader replica dies within the grace period.
            first.stop("ppe-server", signal.SIGKILL)
            leader_killed = time.time() - killed
            self.assertLess(leader_killed, GRACE_S, "the leader kill came after the grace")
            wait_until("the other replica leads", lambda: status(second).get("leader")
                       == second_id, timeout=TTL_S + 10)
            second_leads = time.time() - killed
            # 3. After the grace period the names resolve to containers on B.
            after = {}
            wait_until("eu-west names on host B at both pdns", lambda: after.update(
                self.resolve_all(eu, self.b.net + ".") or {}) or len(after) == len(eu),
                timeout=GRACE_S + 30)
            moved = time.time() - killed
            self.assertGreaterEqual(moved, GRACE_S)
            for address in after.values():
                wait_until(f"HTTP from the moved {address}", lambda a=address:
                           http_status(a) == 200, timeout=10)
            self.assertEqual(self.resolve_all([us], self.b.net + "."), on_b)
            self.check_live_containers("after the move")
            # The stale containers still run on A (unmanaged), on their own addresses.
            self.assertTrue(stale <= set(self.a.live_containers()))
            # The new leader moved them, not the killed one.
            self.assertEqual(len(re.findall(r"of host eu-west-1 re-created as",
                                            self.log(second))), EU_PROFILES)
            self.assertNotIn("re-created as", self.log(first))
            # The killed replica comes back while A is down, a follower; then
            # the replica that moved the VMs dies too: the leader that sees A
            # return never knew the stale containers.
            first.start_ppe()
            first_id = status(first)["replica_id"]  # <host>:<pid>, a new one
            wait_until("the restarted replica follows", lambda: self.leader()[0] is second,
                       timeout=15)
            second.stop("ppe-server", signal.SIGKILL)
            wait_until("the restarted replica leads", lambda: status(first).get("leader")
                       == first_id, timeout=TTL_S + 10)
            second.start_ppe()
            wait_until("both replicas see the leader", lambda: self.leader()[0] is first,
                       timeout=15)
            for s in self.stacks:
                wait_until("host A down at both replicas", lambda s=s: metric(
                    s, "ppe_host_up", host="eu-west-1") == 0, timeout=10)

            # 4. A's libvirtd returns: the leader destroys the stale containers.
            returned_at = time.time()
            self.a.start()
            wait_until("the stale domains destroyed on A", lambda: not (
                self.a.domains() & stale) and not (set(self.a.live_containers()) & stale),
                timeout=30)
            reconciled = time.time() - returned_at
            wait_until("host A up at both replicas", lambda: all(
                metric(s, "ppe_host_up", host="eu-west-1") == 1 for s in self.stacks),
                timeout=15)
            back_up = time.time() - returned_at
            for address in before.values():
                self.assertNotEqual(http_status(address, timeout=1), 200, address)
            self.assertRegex(self.log(first),
                             rf"host eu-west-1 is back: .* {EU_PROFILES} stale domains destroyed")
            self.assertIn("host eu-west-1 is back (reconciled by the leader)", self.log(second))
            self.check_live_containers("after the return")
            whole_run = monitor.names_by_address(until=returned_at)
            twice = {a: n for a, n in whole_run.items() if len(n) > 1}
            self.assertEqual(twice, {}, "an address answered for two names")
            # 5. A takes VMs again.
            again = q.ppectl_json("issue", "--service", "video", "--region", "eu-west",
                                  "--device", "phone")["hostname"]
            fresh = {}
            wait_until("a new eu-west name on host A", lambda: fresh.update(
                self.resolve_all([again], self.a.net + ".") or {}) or fresh, timeout=30)
            wait_until("HTTP from the new container on A",
                       lambda: http_status(fresh[again]) == 200, timeout=20)
            self.check_live_containers("at the end")
        finally:
            monitor.stop.set()
            monitor.join()
        self.assertEqual(monitor.failures, [], "answers that were wrong during the host loss")
        queries = len(monitor.rounds) * len(self.stacks) * (len(eu) + 1)
        print(f"host A (eu-west-1) libvirtd kill -9: noticed after {noticed:.2f} s; leader "
              f"replica kill -9 at {leader_killed:.2f} s, the other leads at {second_leads:.2f} s; "
              f"{EU_PROFILES} eu-west names answered from containers on B at both pdns "
              f"{moved:.2f} s after the kill (grace {GRACE_S} s, probe every {CHECK_MS} ms); "
              f"A's libvirtd restarted (the mover replica killed before): stale containers "
              f"destroyed by the new leader "
              f"{reconciled:.2f} s later, A up at both replicas at {back_up:.2f} s; "
              f"{queries} queries through 2 pdns, 0 wrong; total {time.time() - t0:.1f} s",
              flush=True)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIPPED: needs root (libvirtd, bridges, LXC containers)")
        sys.exit(77)
    if not (shutil.which("libvirtd") or os.path.exists("/usr/sbin/libvirtd")) or \
            not os.path.exists("/usr/bin/tini"):
        print("SKIPPED: no libvirtd or tini (deploy/lxc/setup.sh installs them)")
        sys.exit(77)
    unittest.main(verbosity=2)
