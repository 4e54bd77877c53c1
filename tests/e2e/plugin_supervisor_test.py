"""The plugin cannot take pdns down: ppe-backend (unix connector) is a
supervisor that holds the socket and a worker it re-forks when it dies. Queries
go at a steady rate through a real pdns_server while the worker, and then the
whole plugin, is killed with SIGKILL; the test counts SERVFAIL and lost
queries and measures the time to recovery."""

import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PPE_BACKEND, Stack, dns_query_packet, wait_until  # noqa: E402

NAME = "video.cdn.example.test"  # untagged: scoped, so pdns's caches never answer it
RATE = 400                        # queries per second


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


class SteadyLoad:
    """Sends A queries for NAME at RATE per second; records (sent, rcode or None)."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.2)
        self.sent = {}    # qid -> send time
        self.answers = {}  # qid -> (rcode, receive time)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send), threading.Thread(target=self._receive)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        for t in self.threads:
            t.join()
        self.sock.close()

    def _send(self):
        qid = 0
        start = time.time()
        while not self.stop.is_set():
            qid += 1
            self.sent[qid] = time.time()
            self.sock.sendto(dns_query_packet(qid, NAME), ("127.0.0.1", self.port))
            delay = start + qid / RATE - time.time()
            if delay > 0:
                time.sleep(delay)
        time.sleep(2.5)  # the last answers (pdns's backend timeout is 2 s)

    def _receive(self):
        while not (self.stop.is_set() and not self.threads[0].is_alive()):
            try:
                data, _ = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            qid = int.from_bytes(data[:2], "big")
            self.answers.setdefault(qid, (data[3] & 0xF, time.time()))

    def summary(self, since):
        """Queries sent after `since`: counts by outcome, and the recovery time:
        from `since` to the answer of the last query that did not get NOERROR."""
        counts = {"NOERROR": 0, "SERVFAIL": 0, "REFUSED": 0, "other": 0, "lost": 0}
        last_bad = since
        for qid, t in self.sent.items():
            if t < since:
                continue
            rcode, received = self.answers.get(qid, (None, t + 2.5))
            kind = {0: "NOERROR", 2: "SERVFAIL", 5: "REFUSED", None: "lost"}.get(rcode, "other")
            counts[kind] += 1
            if kind != "NOERROR":
                last_bad = max(last_bad, received)
        return counts, last_bad - since


def backend_connections(stack):
    """pdns's UDP backend connections: receiver-threads x distributor-threads."""
    conf = {"receiver-threads": 1, "distributor-threads": 3}  # pdns's defaults
    with open(os.path.join(stack.dir, "pdns", "pdns.conf")) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key in conf:
                conf[key] = int(value)
    return conf["receiver-threads"] * conf["distributor-threads"]


class Supervisor(unittest.TestCase):
    def test_kill_9_of_the_worker_is_survived_without_a_person(self):
        with Stack() as stack:
            parent = stack.procs["ppe-backend"].pid
            wait_until("the plugin's worker", lambda: len(children(parent)) == 1)
            worker = children(parent)[0]
            self.assertEqual(stack.query(NAME).status, "NOERROR")
            with SteadyLoad(stack.dns_port) as load:
                time.sleep(2)
                killed = time.time()
                os.kill(worker, signal.SIGKILL)
                time.sleep(4)
            counts, recovery = load.summary(killed)
            print(f"worker kill -9 at {RATE} q/s: {counts}, recovered in {recovery:.3f} s")
            new = children(parent)
            self.assertEqual(len(new), 1, "the supervisor started no new worker")
            self.assertNotEqual(new[0], worker)
            self.assertGreater(counts["NOERROR"], RATE * 3)
            # Time to the last failure: about one second on a quiet machine; CI
            # saw 3.5 s beside compiles (10 failures), so this bound is loose and
            # the count below is the claim: at most the queries in flight. pdns
            # does not retry, so each of its backend connections (receiver x
            # distributor threads, 2 x 6 in the shipped pdns.conf) fails the one
            # look-up it had on the dead worker.
            self.assertLess(recovery, 10.0)
            self.assertLessEqual(counts["SERVFAIL"] + counts["lost"] + counts["other"],
                                 7 + backend_connections(stack))
            self.assertEqual(stack.query(NAME).status, "NOERROR")

    def test_crash_loop_backs_off_and_sigterm_stops_both(self):
        with Stack() as stack:
            parent = stack.procs["ppe-backend"].pid
            kills = 0
            deadline = time.time() + 3
            while time.time() < deadline:  # kill every worker as soon as it appears
                for w in children(parent):
                    try:
                        os.kill(w, signal.SIGKILL)
                    except ProcessLookupError:  # killed last round, reaped since
                        continue
                    kills += 1
                time.sleep(0.01)
            # Backoff doubles from 100 ms: about 5 restarts in 3 s, not hundreds.
            self.assertLess(kills, 12, kills)
            self.assertGreater(kills, 2, kills)
            wait_until("a worker after the crash loop", lambda: len(children(parent)) == 1,
                       timeout=10)
            worker = children(parent)[0]
            wait_until("answers after the crash loop",
                       lambda: stack.query(NAME, timeout=1).status == "NOERROR", timeout=10)
            stack.stop("ppe-backend")
            self.assertFalse(os.path.exists(f"/proc/{worker}/status") and
                             open(f"/proc/{worker}/status").read().find("State:\tZ") < 0,
                             "the worker outlived SIGTERM to the supervisor")
            self.assertFalse(os.path.exists(os.path.join(stack.dir, "backend.sock")))

    def test_kill_9_of_the_whole_plugin_until_a_restart(self):
        """The supervisor itself killed: its worker leaves too (PR_SET_PDEATHSIG), pdns
        answers SERVFAIL or REFUSED until something restarts the plugin (systemd's
        Restart=always in production; here the test, 1 s after the worker left)."""
        with Stack() as stack:
            parent = stack.procs["ppe-backend"].pid
            wait_until("the plugin's worker", lambda: len(children(parent)) == 1)
            worker = children(parent)[0]
            with SteadyLoad(stack.dns_port) as load:
                time.sleep(1)
                killed = time.time()
                stack.stop("ppe-backend", sig=signal.SIGKILL)
                wait_until("the worker's exit", lambda: not os.path.exists(f"/proc/{worker}"),
                           timeout=5)
                time.sleep(1.0)
                stack._spawn("ppe-backend",
                             [PPE_BACKEND, "--config", os.path.join(stack.dir, "plugin.conf")])
                restarted = time.time()
                time.sleep(10)
            counts, recovery = load.summary(killed)
            # pdns answers SERVFAIL, or in some runs REFUSED (measured: from the
            # kill until more than 10 s after the restart), while no backend
            # answers; answers come back after the restart without a pdns restart.
            wait_until("answers after the restart",
                       lambda: stack.query(NAME, timeout=1).status == "NOERROR", timeout=120)
            back = time.time() - killed
            print(f"plugin kill -9 at {RATE} q/s, restarted after {restarted - killed:.3f} s: "
                  f"{counts}, last failure {recovery:.3f} s after the kill, answering "
                  f"again {back:.1f} s after it")
            self.assertGreater(counts["SERVFAIL"] + counts["REFUSED"], 0)
            self.assertGreater(recovery, restarted - killed - 0.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
