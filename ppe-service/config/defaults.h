#pragma once

#include "ppe/config/v1/config.pb.h"

namespace ppe::config {

// Fills every field left unset (0, empty) with its documented default and
// canonicalises names (zones, nameservers, services), section by section.
// Checks nothing: a value it cannot interpret is left for CheckPpeConfig to
// refuse. Defaults that depend on another section (cpt.key_file on state_dir,
// registry.drain_s on answers.ttl) read that section's filled value.
void FillDefaults(ppe::config::v1::PpeConfig& config);

}  // namespace ppe::config
