#pragma once

#include <vector>

#include "ppe-service/replay/score.h"
#include "ppe-service/replay/setup.h"
#include "ppe-service/scaler/scaler.h"

namespace ppe::replay {

struct PpeKnobs {
  scaler::Scaler::Mode mode = scaler::Scaler::Mode::kPredictive;
  double level = scaler::Scaler::Options{}.level;
  int cooldown = scaler::Scaler::Options{}.cooldown;
};

// The PPE itself: the server's Scaler, Registry (on the in-memory store),
// VmManager and Janitor on a simulated clock and the simulated hypervisor,
// every profile at once under the setup's global budget (premium tiers
// first). Each bucket the profiles' counts go to the DemandTracker as the
// resolver would record them, and a profile with requests but no ready VM
// allocates one at the bucket's start (the resolver's EnsureVm); at the
// bucket's end the scaler ticks and the janitor releases drained VMs. The lead buffer is the boot
// latency's 90th percentile (the simulated hypervisor creates instantly, so the VmManager measures
// ~0). Returns one score per profile, in the setup's order.
// With s.adaptive_spares the scaler also sizes the service's warm spares from
// its forecast of arrivals (profiles with no ready VM); a profile whose first
// request finds a ready spare takes it over (as VmManager does), and the
// spares' own VM-seconds go into `spares`.
struct PpeScores {
  std::vector<Score> profiles;
  Score spares;
};
PpeScores RunPpe(const Setup& s, const PpeKnobs& knobs);

}  // namespace ppe::replay
