#pragma once

#include <memory>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "ppe-service/dns/name_parser.h"
#include "ppe/v1/resolver.pb.h"

namespace ppe::plugin {

// The zones as the PPE last described them: apex records, services and their
// fallback addresses. Readers take an immutable snapshot; refreshes swap it.
class ZoneCache {
 public:
  struct Zone {
    ppe::v1::ZoneInfo info;
    dns::NameParser parser;
  };
  struct Snapshot {
    std::vector<Zone> zones;
    // The zone a name is in (or null) and where in it the name sits.
    const Zone* Find(absl::string_view qname, dns::ParsedName& parsed) const;
    const Zone* FindByName(absl::string_view zone) const;
    const ppe::v1::ServiceInfo* Service(const Zone& zone, absl::string_view service) const;
  };

  std::shared_ptr<const Snapshot> Get() const;
  void Set(const ppe::v1::ListZonesResponse& zones);
  bool empty() const { return Get()->zones.empty(); }

  // The last zones seen, kept on disk so the plugin serves even when it starts
  // while the PPE is down. Writes atomically (temp file + rename).
  absl::Status Save(const std::string& path) const;
  absl::Status Load(const std::string& path);

 private:
  mutable absl::Mutex mu_;
  ppe::v1::ListZonesResponse raw_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_) =
      std::make_shared<const Snapshot>();
};

}  // namespace ppe::plugin
