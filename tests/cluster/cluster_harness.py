"""Pieces of the cluster tests: a real etcd cluster (Debian etcd-server) of n
members on free loopback ports, and ppe-server replicas sharing it, each in an
end-to-end Stack (tests/e2e/harness.py: its own ppe-server, ppe-backend and
pdns_server). Everything is stopped by PID."""

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Stack, free_port, udp_flood, wait_until  # noqa: E402,F401

FALLBACK = "192.0.2.10"


class EtcdCluster:
    """n etcd members on loopback in a temporary directory."""

    def __init__(self, members=3):
        self.dir = tempfile.mkdtemp(prefix="ppe-etcd-")
        self.client_ports = [free_port() for _ in range(members)]
        peers = [f"http://127.0.0.1:{free_port()}" for _ in range(members)]
        initial = ",".join(f"m{i}={p}" for i, p in enumerate(peers))
        self.procs = []
        for i in range(members):
            client = f"http://127.0.0.1:{self.client_ports[i]}"
            log = open(os.path.join(self.dir, f"m{i}.log"), "ab")
            self.procs.append(subprocess.Popen(
                ["etcd", "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}.etcd"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
                 "--initial-cluster", initial, "--initial-cluster-state", "new"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            log.close()
        for i in range(members):
            wait_until(f"etcd member {i}", lambda i=i: self.healthy(i), timeout=30)

    def endpoints(self):
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def healthy(self, i):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.client_ports[i]}/health",
                                        timeout=1) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    def etcdctl(self, *args):
        env = dict(os.environ, ETCDCTL_API="3")
        return subprocess.run(["etcdctl", "--endpoints", ",".join(self.endpoints()), *args],
                              capture_output=True, text=True, timeout=20, env=env)

    def close(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def replica_conf(etcd, prefix="/ppe-cluster/", ttl_s=2, extra=""):
    endpoints = " ".join(f'etcd_endpoints: "{e}"' for e in etcd.endpoints())
    return (f'registry {{ store: ETCD {endpoints} etcd_prefix: "{prefix}" '
            f'etcd_lease_ttl_s: {ttl_s} janitor_interval_s: 1 }}\n' + extra)


def replica_stack(etcd, key_file, **kw):
    """A Stack whose ppe-server is a replica on `etcd`, with the shared CPT key
    file (the operator distributes it to every replica)."""
    replace = {"time_buckets_per_day: 4": f'time_buckets_per_day: 4\n  key_file: "{key_file}"'}
    replace.update(kw.pop("conf_replace", {}))
    return Stack(extra_ppe_conf=replica_conf(etcd, **kw.pop("conf", {})), conf_replace=replace,
                 **kw)
