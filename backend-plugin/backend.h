#pragma once

#include <atomic>
#include <string>

#include "absl/strings/string_view.h"

#include "backend-plugin/answer_table.h"
#include "backend-plugin/demand_reporter.h"
#include "backend-plugin/ppe_client.h"
#include "backend-plugin/remote_protocol.h"
#include "backend-plugin/zone_cache.h"

namespace ppe::plugin {

// Answers one remote-backend request line. Apex, SOA walks and names that
// cannot hold records are answered from the zone cache without a round trip;
// address look-ups found in the answer table (tagged names and known cohorts)
// are answered from it, labels that cannot be CPTs as untagged without asking
// the PPE; the rest go to the PPE, and to the service's fallback addresses
// when the PPE fails or is late. Every request gets a reply.
class Backend {
 public:
  struct Stats {
    std::atomic<uint64_t> requests{0}, lookups{0}, forwarded{0}, fallbacks{0}, malformed{0},
        local{0}, not_cpt{0};
  };

  // `table` and `demand` may be null (every address look-up goes to the PPE).
  Backend(ZoneCache& zones, PpeClient& ppe, AnswerTable* table = nullptr,
          DemandReporter* demand = nullptr)
      : zones_(zones), ppe_(ppe), table_(table), demand_(demand) {}

  std::string Handle(absl::string_view line);
  const Stats& stats() const { return stats_; }

 private:
  std::string Lookup(const Request& req);
  std::string Fallback(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                       const Request& req, const std::string& service, absl::string_view why);
  std::string FallbackRecords(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                              const Request& req, const std::string& service);
  // True (and `reply` set) when the look-up is answered without the PPE.
  static std::string ProbeClientKey(absl::string_view service, const Request& req);
  bool AnswerLocally(const ZoneCache::Snapshot& snap, const ZoneCache::Zone& zone,
                     const Request& req, const dns::ParsedName& parsed, std::string& reply);

  ZoneCache& zones_;
  PpeClient& ppe_;
  AnswerTable* table_;
  DemandReporter* demand_;
  Stats stats_;
  std::atomic<int64_t> last_fallback_log_ns_{0};
};

}  // namespace ppe::plugin
