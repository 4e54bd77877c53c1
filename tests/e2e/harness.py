"""Starts the real stack for end-to-end tests: ppe-server, ppe-backend and
pdns_server on free loopback ports in a temporary directory, with the configs
rendered from deploy/conf/ (the ones the quick start ships). Stops them by PID."""

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PPE_BUILD_DIR", os.path.join(ROOT, "build"))
PPE_SERVER = os.path.join(BUILD, "ppe-service", "ppe-server")
PPE_BACKEND = os.path.join(BUILD, "backend-plugin", "ppe-backend")
PPECTL = os.path.join(BUILD, "ppe-service", "ppectl", "ppectl")


def free_port(kind=socket.SOCK_STREAM):
    """A port free for both TCP and UDP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def free_lxc_subnet(bridge_prefix):
    """X of a 10.213.X.0/24 no interface uses, whose bridge <bridge_prefix>X does
    not exist: a private subnet per LXC test run, so parallel runs do not clash."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    for _ in range(100):
        x = random.randint(10, 250)
        if f" 10.213.{x}." not in used and subprocess.run(
                ["ip", "link", "show", f"{bridge_prefix}{x}"], capture_output=True).returncode != 0:
            return x
    raise RuntimeError("no free 10.213.X.0/24")


def http_status(address, timeout=3):
    """The HTTP status of GET http://address:8080/, or why there was none."""
    try:
        return urllib.request.urlopen(f"http://{address}:8080/", timeout=timeout).status
    except Exception as e:  # noqa: BLE001 - any failure is "not serving"
        return str(e)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Sends `sig` to a child and reaps it; SIGKILL if it has not gone after `timeout` s."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(what, predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not ready after {timeout} s")


class Answer:
    def __init__(self, status, records, scope, elapsed):
        self.status = status          # "NOERROR", "NXDOMAIN", "SERVFAIL", ...
        self.records = records        # [(name, ttl, type, data)]
        self.scope = scope            # ECS scope prefix length echoed, or None
        self.elapsed = elapsed        # seconds

    def addresses(self, rtype="A"):
        return sorted(r[3] for r in self.records if r[2] == rtype)

    def __repr__(self):
        return f"Answer({self.status}, {self.records}, scope={self.scope})"


class Stack:
    def __init__(self, extra_ppe_conf="", hypervisor_uri="test:///default",
                 admin_port=None, ppectl_args=(), conf_replace=None, ppe_template="ppe",
                 template_vars=None, other_backend=None):
        """admin_port: where ppectl calls Admin (the ppe.conf's admin_listen, which
        extra_ppe_conf sets); default the Resolver port. ppectl_args: auth flags
        ppectl gets on every call (--token-file, --tls-*). conf_replace: text
        replacements applied to the rendered ppe.conf. other_backend: "bind" or
        "gsqlite3" launches that pdns backend before ours (launch=X,remote),
        serving OTHER_ZONE (see other_backend_conf), as an existing pdns would."""
        self.dir = tempfile.mkdtemp(prefix="ppe-e2e-")
        self.dns_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.admin_port = admin_port or self.grpc_port
        self.ppectl_args = list(ppectl_args)
        self.hypervisor_uri = hypervisor_uri
        self.extra_ppe_conf = extra_ppe_conf
        self.conf_replace = conf_replace or {}
        self.template_vars = template_vars or {}
        self.procs = {}
        os.makedirs(os.path.join(self.dir, "state"))
        os.makedirs(os.path.join(self.dir, "pdns"))
        self._render(ppe_template, os.path.join(self.dir, "ppe.conf"), extra_ppe_conf,
                     self.conf_replace)
        self._render("plugin", os.path.join(self.dir, "plugin.conf"))
        self._render("pdns", os.path.join(self.dir, "pdns", "pdns.conf"))
        if other_backend:
            self.set_pdns_option(other_backend_conf(other_backend, self.dir), launch=True)

    def _render(self, name, path, extra="", replace=None):
        with open(os.path.join(ROOT, "deploy", "conf", name + ".conf.in")) as f:
            text = f.read()
        for k, v in {"@RUN@": self.dir, "@GRPC_PORT@": str(self.grpc_port),
                     "@DNS_PORT@": str(self.dns_port),
                     "@METRICS_PORT@": str(self.metrics_port),
                     "@HYPERVISOR_URI@": self.hypervisor_uri, **self.template_vars}.items():
            text = text.replace(k, v)
        for k, v in (replace or {}).items():
            assert k in text, k
            text = text.replace(k, v)
        with open(path, "w") as f:
            f.write(text + extra)

    def set_pdns_option(self, line, launch=False):
        """Appends `line` to pdns.conf; launch=True: `line` starts with the
        launch= setting that replaces the template's."""
        path = os.path.join(self.dir, "pdns", "pdns.conf")
        if launch:
            with open(path) as f:
                kept = [l for l in f if not l.startswith("launch=")]
            with open(path, "w") as f:
                f.writelines(kept)
        with open(path, "a") as f:
            f.write(line + "\n")

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        log.close()  # the child has its own copy

    def start_ppe(self):
        self._spawn("ppe-server", [PPE_SERVER, "--config", os.path.join(self.dir, "ppe.conf")])
        wait_until("ppe-server", lambda: self.ppectl("profiles").returncode == 0, timeout=30)

    def use_pipe_connector(self):
        """pdns starts ppe-backend itself (pipe connector) instead of connecting to its socket."""
        script = os.path.join(self.dir, "backend.sh")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\nexec {PPE_BACKEND} --config {self.dir}/plugin.conf --pipe "
                    f"2>>{self.dir}/ppe-backend.log\n")
        os.chmod(script, 0o755)
        path = os.path.join(self.dir, "pdns", "pdns.conf")
        with open(path) as f:
            lines = [l for l in f if not l.startswith("remote-connection-string=")]
        lines.append(f"remote-connection-string=pipe:command={script},timeout=2000\n")
        with open(path, "w") as f:
            f.writelines(lines)
        self.pipe = True

    def start(self):
        """Starts the three processes and waits until pdns answers the apex SOA.
        The waits are generous (CI runs this beside compiles); on failure the
        logs are printed and whatever started is stopped, since a `with` block
        whose __enter__ raised never reaches __exit__."""
        try:
            self.start_ppe()
            if not getattr(self, "pipe", False):
                self._spawn("ppe-backend",
                            [PPE_BACKEND, "--config", os.path.join(self.dir, "plugin.conf")])
                wait_until("ppe-backend",
                           lambda: os.path.exists(os.path.join(self.dir, "backend.sock")),
                           timeout=30)
            self._spawn("pdns", ["pdns_server", "--config-dir=" + os.path.join(self.dir, "pdns"),
                                 "--daemon=no", "--guardian=no"])
            wait_until("pdns_server",
                       lambda: self.query("cdn.example.test", "SOA", timeout=1).status
                       == "NOERROR", timeout=30)
        except BaseException:
            self.print_logs()
            self.close()
            raise
        return self

    def stop(self, name, sig=signal.SIGTERM):
        p = self.procs.pop(name, None)
        if p is not None:
            stop_process(p, sig)

    def close(self, keep_dir=False):
        for name in ["pdns", "ppe-backend", "ppe-server"]:
            self.stop(name)
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def print_logs(self):
        for name in ["ppe-server", "ppe-backend", "pdns"]:
            path = os.path.join(self.dir, name + ".log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"--- {name}.log (tail)\n" + "".join(f.readlines()[-30:]))

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.print_logs()
        self.close()

    def ppectl(self, *args):
        return subprocess.run([PPECTL, "--server", f"127.0.0.1:{self.admin_port}",
                               *self.ppectl_args, *args],
                              capture_output=True, text=True, timeout=30)

    def ppectl_json(self, *args):
        r = self.ppectl(*args, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def vms(self):
        return self.ppectl_json("vms").get("vms", [])

    def query(self, name, qtype="A", subnet=None, timeout=3, tcp=False):
        argv = ["dig", f"@127.0.0.1", "-p", str(self.dns_port), name, qtype, "+noall",
                "+answer", "+comments", f"+time={timeout}", "+tries=1"]
        if subnet:
            argv.append(f"+subnet={subnet}")
        if tcp:
            argv.append("+tcp")
        start = time.time()
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        elapsed = time.time() - start
        m = re.search(r"status: (\w+)", out)
        status = m.group(1) if m else "TIMEOUT"
        scope = None
        m = re.search(r"CLIENT-SUBNET: [0-9a-fA-F.:]+/(\d+)/(\d+)", out)
        if m:
            scope = int(m.group(2))
        records = []
        for line in out.splitlines():
            if not line or line.startswith(";"):
                continue
            parts = line.split(None, 4)
            if len(parts) == 5:
                records.append((parts[0].lower(), int(parts[1]), parts[3], parts[4]))
        return Answer(status, records, scope, elapsed)


# The zone another pdns backend serves beside ours (Stack(other_backend=...)).
OTHER_ZONE = "other.example.test"
OTHER_RECORDS = [  # name, type, content
    (OTHER_ZONE, "SOA", f"ns1.{OTHER_ZONE} hostmaster.{OTHER_ZONE} 2024010101 3600 600 86400 60"),
    (OTHER_ZONE, "NS", f"ns1.{OTHER_ZONE}"),
    (f"ns1.{OTHER_ZONE}", "A", "192.0.2.53"),
    (f"www.{OTHER_ZONE}", "A", "192.0.2.80"),
]


def other_backend_conf(kind, directory):
    """Writes OTHER_ZONE for pdns's bind or gsqlite3 backend under `directory`
    and returns the pdns.conf lines that launch it before the remote backend."""
    if kind == "bind":
        zone = os.path.join(directory, "other.zone")
        with open(zone, "w") as f:
            f.write(f"$ORIGIN {OTHER_ZONE}.\n$TTL 300\n")
            for name, rtype, content in OTHER_RECORDS:
                dotted = " ".join(w + "." if w.endswith(OTHER_ZONE) else w
                                  for w in content.split())
                f.write(f"{name}. IN {rtype} {dotted}\n")
        named = os.path.join(directory, "named.conf")
        with open(named, "w") as f:
            f.write(f'zone "{OTHER_ZONE}" {{ type master; file "{zone}"; }};\n')
        return f"launch=bind,remote\nbind-config={named}"
    if kind == "gsqlite3":
        import sqlite3
        db = os.path.join(directory, "pdns.sqlite3")
        with open("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql") as f:
            schema = f.read()
        with sqlite3.connect(db) as c:
            c.executescript(schema)
            c.execute("INSERT INTO domains (name, type) VALUES (?, 'NATIVE')", (OTHER_ZONE,))
            c.executemany("INSERT INTO records (domain_id, name, type, content, ttl, prio, "
                          "disabled, auth) VALUES (1, ?, ?, ?, 300, 0, 0, 1)", OTHER_RECORDS)
        return f"launch=gsqlite3,remote\ngsqlite3-database={db}"
    raise ValueError(f"unknown backend {kind}")


def dns_query_packet(qid, name, qtype=1, ecs=None):
    """A DNS query in wire format; ecs = ("198.51.100.0", 24) adds an EDNS Client Subnet."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    options = b""
    if ecs:
        address, bits = ecs
        addr = socket.inet_aton(address)[: (bits + 7) // 8]
        data = struct.pack("!HBB", 1, bits, 0) + addr
        options = struct.pack("!HH", 8, len(data)) + data
    opt = b"\0" + struct.pack("!HHIH", 41, 4096, 0, len(options)) + options
    return header + qname + struct.pack("!HH", qtype, 1) + opt


def udp_flood(port, names, ecs=None, window=64, timeout=2.0):
    """Sends one A query per name to 127.0.0.1:port, at most `window` in flight;
    returns {rcode: count} of the answers (lost ones under "lost")."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(timeout)
    counts = {}
    inflight = 0
    sent = 0
    while sent < len(names) or inflight:
        while inflight < window and sent < len(names):
            sock.sendto(dns_query_packet(sent & 0xFFFF, names[sent], ecs=ecs), ("127.0.0.1", port))
            sent += 1
            inflight += 1
        try:
            data, _ = sock.recvfrom(4096)
            rcode = data[3] & 0xF
            counts[rcode] = counts.get(rcode, 0) + 1
            inflight -= 1
        except socket.timeout:
            counts["lost"] = counts.get("lost", 0) + inflight
            inflight = 0
    sock.close()
    return counts


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
