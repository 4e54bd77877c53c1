"""The leader's scaler sees the whole cluster's demand (label `cluster`): two
ppe-server replicas on a real etcd, each behind its own pdns_server +
ppe-backend, pdns caches off. N queries for a tagged name go through the
FOLLOWER's pdns only; the follower's DemandForwarder sends its counts to the
leader's Resolver.ReportAnswers, so the leader's forecast history holds N.
Then, half a bucket after the leader's history holds the N (the bucket they
were counted in has just ended, the next has not), the leader gets kill -9: the follower, elected,
reloads the demand checkpoints and its forecast history still holds exactly
the N: the last bucket was checkpointed (every bucket is, by default), and no
forwarded batch was counted twice."""

import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_harness import (EtcdCluster, metrics, replica_stack, status,  # noqa: E402
                             udp_flood, wait_until)
from cluster_harness import key_file as shared_key_file  # noqa: E402

TTL_S = 2
N = 600
CACHES_OFF = ("cache-ttl=0", "query-cache-ttl=0", "negquery-cache-ttl=0")
# One-second buckets (the forwarder sends every 250 ms); checkpoints at their default.
SCALER = "scaler { bucket_ms: 1000 }\n"


def history_sum(stack, cpt):
    r = stack.ppectl("forecast", "--cpt", cpt, "--service", "video", "--json")
    if r.returncode != 0:
        return None  # no demand recorded yet
    import json
    return sum(json.loads(r.stdout).get("history", []))


class Demand(unittest.TestCase):
    def test_a_followers_demand_reaches_the_leader_and_outlives_it(self):
        etcd = EtcdCluster(1)
        key_file = shared_key_file()
        stacks = []
        try:
            for _ in range(2):
                s = replica_stack(etcd, key_file, conf={"ttl_s": TTL_S, "extra": SCALER})
                for opt in CACHES_OFF:
                    s.set_pdns_option(opt)
                stacks.append(s.start())
            a, b = stacks
            wait_until("a leader", lambda: status(a).get("leader") and
                       status(a).get("leader") == status(b).get("leader"), timeout=15)
            ids = {status(a)["replica_id"]: a, status(b)["replica_id"]: b}
            leader = ids[status(a)["leader"]]
            follower = b if leader is a else a
            follower_id = status(follower)["replica_id"]

            issued = follower.ppectl_json("issue", "--service", "video", "--region", "eu-west")
            cpt = issued["cpt"]
            wait_until("the profile on the leader",
                       lambda: any(p["cpt"] == cpt for p in
                                   leader.ppectl_json("profiles").get("profiles", [])), timeout=5)
            counts = udp_flood(follower.dns_port, [issued["hostname"]] * N)
            self.assertEqual(counts.get(0), N, counts)
            sent = time.time()
            wait_until(f"{N} requests in the leader's history",
                       lambda: (history_sum(leader, cpt) or 0) >= N, timeout=10)
            seen = time.time() - sent
            # The follower's metrics: the N forwarded and acknowledged, nothing
            # held or dropped; the leader is the one that says it leads.
            fm, lm = metrics(follower), metrics(leader)
            self.assertEqual(fm.get("ppe_demand_forwarded_total"), N, fm)
            self.assertEqual(fm.get("ppe_demand_held"), 0, fm)
            self.assertEqual(fm.get("ppe_demand_dropped_total"), 0, fm)
            self.assertEqual((fm.get("ppe_cluster_leader"), lm.get("ppe_cluster_leader")), (0, 1))
            self.assertEqual(lm.get("ppe_demand_duplicates_total"), 0, lm)
            self.assertEqual(lm.get("ppe_demand_forwarded_total"), 0, lm)
            # Half a bucket later, before the leader's next tick: the bucket that
            # completed the N ended less than a bucket ago, and its checkpoint
            # (written right after the tick that showed it) is the last one.
            time.sleep(0.5)
            leader.stop("ppe-server", signal.SIGKILL)
            killed = time.time()
            print(f"{N} queries through the follower's pdns: the leader's history held "
                  f"them {seen:.2f} s after the flood; leader kill -9 "
                  f"{killed - sent - seen:.2f} s later", flush=True)
            wait_until("the follower leads", lambda: status(follower).get("leader") ==
                       follower_id, timeout=TTL_S + 10)
            elected = time.time() - killed
            wait_until("the new leader's history", lambda: history_sum(follower, cpt) is not None,
                       timeout=5)
            time.sleep(1.5)  # a tick or two of the new leader's scaler
            reloaded = history_sum(follower, cpt)
            print(f"leader kill -9: {follower_id} leads after {elected:.2f} s; its history "
                  f"holds {reloaded:.0f} of the {N} (reloaded from the checkpoints)", flush=True)
            self.assertEqual(reloaded, N)
            with open(os.path.join(follower.dir, "ppe-server.log")) as f:
                log = f.read()
            after = log[log.index(f"replica {follower_id} leads"):]
            restored = re.search(r"scaler: restored \d+ limits and (\d+) demand chunks", after)
            self.assertTrue(restored and int(restored.group(1)) >= 1, after[:2000])
        except BaseException:
            for s in stacks:
                s.print_logs()
            raise
        finally:
            for s in stacks:
                s.close()
            etcd.close()


if __name__ == "__main__":
    unittest.main()
