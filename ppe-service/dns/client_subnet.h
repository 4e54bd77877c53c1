#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ppe::dns {

// The prefix length pdns's `real-remote` names ("198.51.100.0/24" -> 24): the
// ECS source prefix (0 for source /0), or the full length of the resolver's
// address. Without a usable real-remote, the full length of `remote`.
// Records that must never be shared between clients carry this as scopeMask,
// which also keeps them out of pdns's packet and query caches.
uint32_t ClientScope(absl::string_view real_remote, absl::string_view remote);

}  // namespace ppe::dns
