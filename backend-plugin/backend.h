#pragma once

#include <atomic>
#include <string>
#include <string_view>
#include "absl/strings/string_view.h"

#include "backend-plugin/ppe_client.h"
#include "backend-plugin/remote_protocol.h"
#include "backend-plugin/zone_cache.h"

namespace ppe::plugin {

// Answers one remote-backend request line. Apex, SOA walks and names that
// cannot hold records are answered from the zone cache without a round trip;
// address look-ups at service names go to the PPE, and to the service's
// fallback addresses when the PPE fails or is late. Every request gets a reply.
class Backend {
 public:
  struct Stats {
    std::atomic<uint64_t> requests{0}, lookups{0}, forwarded{0}, fallbacks{0}, malformed{0};
  };

  Backend(ZoneCache& zones, PpeClient& ppe) : zones_(zones), ppe_(ppe) {}

  std::string Handle(absl::string_view line);
  const Stats& stats() const { return stats_; }

 private:
  std::string Lookup(const Request& req);
  std::string Fallback(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                       const Request& req, const std::string& service, absl::string_view why);

  ZoneCache& zones_;
  PpeClient& ppe_;
  Stats stats_;
  std::atomic<int64_t> last_fallback_log_ns_{0};
};

}  // namespace ppe::plugin
