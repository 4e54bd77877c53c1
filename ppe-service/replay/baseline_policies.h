#pragma once

#include "ppe-service/replay/boot_latency.h"
#include "ppe-service/replay/score.h"
#include "ppe-service/replay/setup.h"

namespace ppe::replay {

// The policies the PPE is compared with, on one profile. Each creates VMs
// drawing boot latencies from `boot` in creation order.

// The scored window's peak need, always on (known in hindsight).
Score StaticPeak(const Setup& s, const Profile& p);

// Allocate on query: a VM is created at the start of the bucket in which a
// request finds none free, and released once idle for `keep_alive_seconds`
// (rounded up to buckets). 60 s is the prior art ("reactive").
Score KeepAlive(const Setup& s, const Profile& p, BootLatency& boot, double keep_alive_seconds);

// Shahrad et al. (USENIX ATC 2020), per VM slot: the slot's idle times
// (buckets) form a histogram; once it holds 10, the VM is unloaded after its
// last use until the `head` percentile minus the boot time (pre-warm) and
// kept until the `tail` percentile (keep-alive). Before that, a fixed
// 10-minute keep-alive.
Score HybridHistogram(const Setup& s, const Profile& p, BootLatency& boot, double head = 0.05,
                      double tail = 0.99);

// Target tracking, as the Kubernetes HPA and AWS do: at each bucket's end,
// desired = ceil(the bucket's rate / (capacity x utilisation)); scale-up is
// immediate, scale-down goes to the highest desired count of the last
// `stabilisation_seconds`.
Score TargetTracking(const Setup& s, const Profile& p, BootLatency& boot, double utilisation = 0.7,
                     double stabilisation_seconds = 300);

}  // namespace ppe::replay
