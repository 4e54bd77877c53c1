"""Pre-provisioning on real containers: the ramp of tests/e2e/scaling_test.py
(real DNS queries through pdns, 1 s buckets, 20 requests per VM) against the
PPE on libvirt LXC, where a VM is ready only when its HTTP server answers. The
lead time includes the measured container boot time."""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, HERE)
from harness import Stack, free_lxc_subnet  # noqa: E402
from scaling_test import PER_VM_CONF, replay, scaling_conf  # noqa: E402


class PreProvisioningOnContainers(unittest.TestCase):
    def test_containers_are_ready_before_the_ramp_needs_them(self):
        x = free_lxc_subnet("ppesc")
        subnet, bridge = f"10.213.{x}", f"ppesc{x}"
        run = subprocess.run(["mktemp", "-d", "/tmp/ppe-lxc-sc.XXXXXX"], capture_output=True,
                             text=True).stdout.strip()
        try:
            uri = subprocess.run([os.path.join(ROOT, "deploy", "lxc", "setup.sh"), run, bridge,
                                  f"{subnet}.1/24"], capture_output=True, text=True,
                                 check=True).stdout.strip()
            # ppe-lxc.conf has no limits block of its own: the per-profile bound
            # of PER_VM_CONF goes in as an addition instead.
            replace = {k: v for k, v in PER_VM_CONF.items() if not k.startswith("limits")}
            replace['    warm_spares: 1\n'] = ''  # the scaler alone provisions
            stack = Stack(ppe_template="ppe-lxc", hypervisor_uri=uri,
                          template_vars={"@BRIDGE@": bridge, "@SUBNET@": subnet,
                                         "@GATEWAY@": f"{subnet}.1"},
                          extra_ppe_conf=scaling_conf("predictive") +
                          "limits { max_vms_per_profile: 30 }\n", conf_replace=replace)
            rows, view = replay("predictive", stack)
        finally:
            subprocess.run([os.path.join(ROOT, "deploy", "lxc", "teardown.sh"), run, bridge])
            subprocess.run(["rm", "-rf", run])
        scored = rows[6:]
        short = sum(1 for _, _, need, ready in scored if ready < need)
        print(f"LXC predictive: short in {short}/{len(scored)} buckets; model {view.get('model')}, "
              f"lead {view.get('lead_buckets')} buckets; (bucket, demand, needed, ready): {rows}",
              flush=True)
        self.assertLessEqual(short, len(scored) // 5)
        self.assertGreaterEqual(rows[-1][3], rows[-1][2])


if __name__ == "__main__":
    unittest.main(verbosity=2)
