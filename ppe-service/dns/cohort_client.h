#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ppe::dns {

// The client an untagged answer is derived for, as pdns names it: its
// `real-remote` ("10.1.2.0/24", "127.0.0.1/32"), or the full-length prefix of
// `remote` when real-remote is empty. The PPE and the plugin key cohort
// answers by it, so both must compute it the same way.
inline std::string CohortClient(absl::string_view real_remote, absl::string_view remote) {
  if (!real_remote.empty()) return std::string(real_remote);
  return absl::StrCat(remote, remote.find(':') == absl::string_view::npos ? "/32" : "/128");
}

// Which of `buckets_per_day` equal parts of the UTC day `minute_of_day` is in.
inline uint32_t TimeBucketIndex(int minute_of_day, uint32_t buckets_per_day) {
  int per_bucket = 1440 / static_cast<int>(buckets_per_day == 0 ? 1 : buckets_per_day);
  return static_cast<uint32_t>(minute_of_day / (per_bucket == 0 ? 1 : per_bucket));
}

}  // namespace ppe::dns
