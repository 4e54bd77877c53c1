#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ppe-service/replay/setup.h"

namespace ppe::replay {

// A VM as the replay sees it, in seconds from the trace's start: it costs
// from `created` to `released` and serves from `ready` to `serve_end` (a
// draining VM is no longer answered but still runs).
struct SimVm {
  double created = 0, ready = 0, serve_end = INFINITY, released = INFINITY;
  // A warm spare a profile took over ends as a spare (`handed_over`: not a
  // release) and starts as the profile's (`taken_over`: not a creation).
  bool handed_over = false, taken_over = false;
};

// What a policy did to one profile over the scored buckets.
struct Score {
  double requests = 0, cold = 0, vm_seconds = 0;
  int64_t created = 0, released = 0;
  int buckets = 0;
  // Cold requests by added latency (0.1 ms steps): the rest waited nothing.
  std::map<int64_t, double> waits;

  void Add(const Score& other);
  double cold_rate() const { return requests > 0 ? cold / requests : 0; }
  // The q-quantile (0..1) of the added latency over all requests, ms.
  double LatencyMs(double q) const;
};

// Scores bucket t of profile p given every VM that ever served it. Requests
// arrive at a steady rate through the bucket; between two events (a VM
// becoming ready or stopping to serve) the serving VMs take up to their
// capacity of it and the rest is cold. A cold request waits for the next VM
// to become ready, at most the boot time's 90th percentile when none is
// booting (its own would be created). Buckets before the warm-up end are not
// scored.
void ScoreBucket(const Setup& s, const Profile& p, int t, const std::vector<SimVm>& vms,
                 Score& score);

// Exactly the VMs each bucket needs, ready in time.
Score OracleScore(const Setup& s, const Profile& p);

// One line of ppe-replay's output.
struct Result {
  std::string policy;
  std::string knob;  // the swept setting, empty for the default
  Score total;
  std::vector<Score> per_profile;
  Score spares;  // warm spares owned by no profile (in `total`, in no profile)
  double run_seconds = 0;
};

}  // namespace ppe::replay
