"""Pieces of the cluster tests: a real etcd cluster (Debian etcd-server) of n
members on free loopback ports, and ppe-server replicas sharing it, each in an
end-to-end Stack (tests/e2e/harness.py: its own ppe-server, ppe-backend and
pdns_server). Everything is stopped by PID."""

import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from harness import Stack, free_port, stop_process, udp_flood, wait_until  # noqa: E402,F401

FALLBACK = "192.0.2.10"


class EtcdCluster:
    """n etcd members on loopback in a temporary directory. tls = (ca, cert,
    key) PEM files serves clients over TLS and requires a client certificate
    signed by `ca` (--client-cert-auth); the same cert/key is the health
    probe's and etcdctl's client certificate."""

    def __init__(self, members=3, tls=None):
        self.dir = tempfile.mkdtemp(prefix="ppe-etcd-")
        self.tls = tls
        scheme = "https" if tls else "http"
        self.client_ports = [free_port() for _ in range(members)]
        peers = [f"http://127.0.0.1:{free_port()}" for _ in range(members)]
        initial = ",".join(f"m{i}={p}" for i, p in enumerate(peers))
        self.argv = []
        for i in range(members):
            client = f"{scheme}://127.0.0.1:{self.client_ports[i]}"
            argv = ["etcd", "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}.etcd"),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
                    "--initial-cluster", initial, "--initial-cluster-state", "new"]
            if tls:
                ca, cert, key = tls
                argv += ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca,
                         "--client-cert-auth"]
            self.argv.append(argv)
        self.procs = [None] * members
        for i in range(members):
            self.start(i)
        for i in range(members):
            wait_until(f"etcd member {i}", lambda i=i: self.healthy(i), timeout=30)

    def start(self, i):
        """Starts member i (again: same name, data dir and ports; a restarted
        member rejoins from its data dir, --initial-cluster-state is ignored)."""
        log = open(os.path.join(self.dir, f"m{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(self.argv[i], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        log.close()

    def kill(self, i, sig=signal.SIGKILL):
        """Sends `sig` to member i; SIGKILL also reaps it."""
        self.procs[i].send_signal(sig)
        if sig == signal.SIGKILL:
            self.procs[i].wait()

    def endpoints(self):
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def healthy(self, i):
        scheme = "https" if self.tls else "http"
        context = None
        if self.tls:
            import ssl
            ca, cert, key = self.tls
            context = ssl.create_default_context(cafile=ca)
            context.load_cert_chain(cert, key)
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{self.client_ports[i]}/health",
                                        timeout=1, context=context) as r:
                return b'"true"' in r.read()
        except OSError:
            return False

    def etcdctl(self, *args, endpoints=None):
        env = dict(os.environ, ETCDCTL_API="3")
        tls = []
        if self.tls:
            ca, cert, key = self.tls
            tls = ["--cacert", ca, "--cert", cert, "--key", key]
        return subprocess.run(["etcdctl", "--endpoints", ",".join(endpoints or self.endpoints()),
                               *tls, *args], capture_output=True, text=True, timeout=20, env=env)

    def raft_leader(self):
        """Index of the member that is raft leader now, or None."""
        r = self.etcdctl("endpoint", "status", "-w", "json", "--command-timeout=2s")
        try:
            status = json.loads(r.stdout)
        except ValueError:
            return None
        for i, s in enumerate(status):
            if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
                return self.endpoints().index(s["Endpoint"])
        return None

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs:
            stop_process(p)
        shutil.rmtree(self.dir, ignore_errors=True)


def replica_conf(etcd, prefix="/ppe-cluster/", ttl_s=2, extra="", endpoints=None, registry=""):
    """endpoints: the members this replica knows (default all); registry: more
    fields of the registry block (e.g. the etcd TLS files)."""
    endpoints = " ".join(f'etcd_endpoints: "{e}"' for e in (endpoints or etcd.endpoints()))
    return (f'registry {{ store: ETCD {endpoints} etcd_prefix: "{prefix}" '
            f'etcd_lease_ttl_s: {ttl_s} janitor_interval_s: 1 {registry} }}\n' + extra)


def replica_stack(etcd, key_file, **kw):
    """A Stack whose ppe-server is a replica on `etcd`, with the shared CPT key
    file (the operator distributes it to every replica)."""
    replace = {"time_buckets_per_day: 4": f'time_buckets_per_day: 4\n  key_file: "{key_file}"'}
    replace.update(kw.pop("conf_replace", {}))
    return Stack(extra_ppe_conf=replica_conf(etcd, **kw.pop("conf", {})), conf_replace=replace,
                 **kw)


def share_replicas(stacks):
    """Points every stack's plugin at all the stacks' replicas (round robin),
    as deploy/quickstart.sh --cluster does; before start()."""
    target = "ipv4:" + ",".join(f"127.0.0.1:{s.grpc_port}" for s in stacks)
    for s in stacks:
        path = os.path.join(s.dir, "plugin.conf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r'(?m)^ppe_target:.*$', f'ppe_target: "{target}"', text))


def metrics(stack):
    """The replica's /metrics as {name: value} for the samples without labels
    ({} when it does not answer)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics",
                                      timeout=2).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out


def status(stack):
    """`ppectl status --json` of the stack's replica ({} when it does not answer)."""
    r = stack.ppectl("status", "--json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def key_file():
    """A path for the CPT key file the replicas share, in a temporary
    directory removed when the test process exits."""
    keys = tempfile.mkdtemp(prefix="ppe-keys-")
    atexit.register(shutil.rmtree, keys, True)
    return os.path.join(keys, "cpt-keys")
