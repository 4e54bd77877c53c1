#include "ppe-service/replay/access_log.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "ppe-service/cpt/attributes.h"

namespace ppe::replay {
namespace {

struct Line {
  std::string client, user_agent;
  absl::Time time;
};

// `host ident user [time] "request" status bytes "referer" "agent"`.
bool ParseLine(absl::string_view raw, Line& out) {
  absl::string_view line(raw.data(), raw.size());
  const size_t space = line.find(' ');
  const size_t open = line.find('['), close = line.find(']');
  if (space == absl::string_view::npos || open == absl::string_view::npos ||
      close == absl::string_view::npos || close < open) {
    return false;
  }
  out.client = std::string(line.substr(0, space));
  std::string error;
  if (!absl::ParseTime("%d/%b/%Y:%H:%M:%S %z", line.substr(open + 1, close - open - 1), &out.time,
                       &error)) {
    return false;
  }
  // The user agent: the last quoted field (absent in the common log format).
  out.user_agent.clear();
  const size_t last = line.rfind('"');
  if (last != absl::string_view::npos && last > close) {
    const size_t first = line.rfind('"', last - 1);
    if (first != absl::string_view::npos && first > close) {
      out.user_agent = std::string(line.substr(first + 1, last - first - 1));
    }
  }
  return true;
}

// "a.b.c.0/24" for an IPv4 client, "x:x:x:x::/56"-style for IPv6 (the first
// 56 bits kept), empty for something else.
std::string Cohort(const std::string& client) {
  absl::StatusOr<cpt::Prefix> p = cpt::Prefix::Parse(client);
  if (!p.ok()) return "";
  if (p->v4) {
    const auto& a = p->address;
    return absl::StrCat(a[12], ".", a[13], ".", a[14], ".0/24");
  }
  std::string out;
  for (int i = 0; i < 7; ++i) absl::StrAppend(&out, absl::Hex(p->address[i], absl::kZeroPad2));
  return absl::StrCat(out, "/56");
}

}  // namespace

std::string DeviceClass(absl::string_view agent_in) {
  const std::string ua = absl::AsciiStrToLower(absl::string_view(agent_in.data(), agent_in.size()));
  auto has = [&](const char* s) { return absl::StrContains(ua, s); };
  if (ua.empty() || ua == "-") return "unknown";
  if (has("bot") || has("crawl") || has("spider") || has("slurp") || has("curl") || has("wget") ||
      has("python") || has("java/") || has("feed")) {
    return "bot";
  }
  if (has("smart-tv") || has("smarttv") || has("appletv") || has("googletv") || has("roku") ||
      has("tizen") || has("webos")) {
    return "tv";
  }
  if (has("ipad") || has("tablet") || (has("android") && !has("mobile"))) return "tablet";
  if (has("mobile") || has("iphone") || has("android") || has("windows phone")) return "mobile";
  if (has("mozilla") || has("opera")) return "desktop";
  return "unknown";
}

absl::StatusOr<std::vector<Profile>> ProfilesFromLog(absl::string_view text,
                                                     const LogOptions& options, int* skipped) {
  *skipped = 0;
  const int per_bucket = 1440 / std::max(1, options.time_buckets_per_day);
  std::map<std::string, std::vector<int64_t>> requests;  // profile -> bucket of each request
  int64_t first = INT64_MAX, last = INT64_MIN;
  Line l;
  for (absl::string_view raw : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    if (absl::StripAsciiWhitespace(raw).empty()) continue;
    std::string cohort;
    if (!ParseLine(absl::string_view(raw.data(), raw.size()), l) ||
        (cohort = Cohort(l.client)).empty()) {
      ++*skipped;
      continue;
    }
    cpt::Attributes a;
    if (options.regions != nullptr) {
      absl::StatusOr<cpt::Prefix> p = cpt::Prefix::Parse(l.client);
      if (p.ok()) a.region = options.regions->Lookup(*p);
    }
    a.device_class = DeviceClass(l.user_agent);
    const absl::CivilMinute m = absl::ToCivilMinute(l.time, absl::UTCTimeZone());
    a.time_bucket = absl::StrCat("tod", (m.hour() * 60 + m.minute()) / per_bucket);
    const int64_t bucket = static_cast<int64_t>(
        std::floor(absl::ToDoubleSeconds(l.time - absl::UnixEpoch()) / options.bucket_seconds));
    first = std::min(first, bucket);
    last = std::max(last, bucket);
    requests[absl::StrCat("cohort=", cohort, ";", cpt::CanonicalEncoding(cpt::Canonicalize(a)))]
        .push_back(bucket);
  }
  if (requests.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no request in the log parses as the combined log format (", *skipped, " lines skipped)"));
  }
  std::vector<Profile> out;
  for (auto& [name, buckets] : requests) {
    Profile p{.name = name, .demand = std::vector<double>(last - first + 1, 0.0)};
    for (int64_t b : buckets) p.demand[b - first] += 1;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace ppe::replay
