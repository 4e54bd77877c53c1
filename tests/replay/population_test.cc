// The many-tenant inputs of ppe-replay: device classes from user agents, and
// the synthetic population's shapes and Zipf sizes.

#include <catch2/catch.hpp>
#include <numeric>

#include "ppe-service/replay/access_log.h"
#include "ppe-service/replay/synthetic.h"

namespace ppe::replay {
namespace {

TEST_CASE("device classes from user agents") {
  CHECK(DeviceClass("Mozilla/5.0 (compatible; Googlebot/2.1)") == "bot");
  CHECK(DeviceClass("Mozilla/5.0 (iPhone; CPU iPhone OS 8_3) Mobile/12F70") == "mobile");
  CHECK(DeviceClass("Mozilla/5.0 (Linux; Android 4.4.2; Nexus 5) Mobile Safari") == "mobile");
  CHECK(DeviceClass("Mozilla/5.0 (iPad; CPU OS 8_1 like Mac OS X)") == "tablet");
  CHECK(DeviceClass("Mozilla/5.0 (SMART-TV; Linux; Tizen 2.3)") == "tv");
  CHECK(DeviceClass("Mozilla/5.0 (Windows NT 6.1; WOW64) Chrome/32.0") == "desktop");
  CHECK(DeviceClass("-") == "unknown");
}

TEST_CASE("an access log's requests go to the profile the server would derive") {
  const std::string log =
      "10.1.2.3 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"curl/7.0\"\n"
      "10.1.2.200 - - [17/May/2015:10:07:10 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"curl/7.1\"\n"
      "garbage\n";
  int skipped = 0;
  cpt::RegionTable regions;
  REQUIRE(regions.Add("10.1.0.0/16", "eu-west").ok());
  absl::StatusOr<std::vector<Profile>> p =
      ProfilesFromLog(log, {.bucket_seconds = 60, .regions = &regions}, &skipped);
  REQUIRE(p.ok());
  CHECK(skipped == 1);
  REQUIRE(p->size() == 1);
  CHECK((*p)[0].name ==
        "cohort=10.1.2.0/24;region=eu-west;device=bot;tier=standard;time=tod1;pattern=unknown");
  CHECK((*p)[0].demand == std::vector<double>{1, 0, 1});  // 10:05, 10:06, 10:07
}

TEST_CASE("the synthetic population: M4 shapes, Zipf sizes") {
  // Two series of 4 values (a third is too short and skipped).
  const std::string csv =
      "\"V1\",\"V2\",\"V3\",\"V4\",\"V5\"\n\"H1\",1,2,3,2\n\"H2\",4,4,4,4\n"
      "\"H3\",1,2\n";
  absl::StatusOr<std::vector<Profile>> p = SyntheticPopulation(csv, 3, 10000, 4);
  REQUIRE(p.ok());
  REQUIRE(p->size() == 3);
  CHECK((*p)[0].name == "synthetic-1-H1");
  CHECK((*p)[1].name == "synthetic-2-H2");
  CHECK((*p)[2].name == "synthetic-3-H1");
  auto total = [](const Profile& q) {
    return std::accumulate(q.demand.begin(), q.demand.end(), 0.0);
  };
  // Means 10000, 5000, 3333 per bucket: Poisson totals within a few percent.
  CHECK(total((*p)[0]) == Approx(40000).epsilon(0.03));
  CHECK(total((*p)[1]) == Approx(20000).epsilon(0.03));
  CHECK(total((*p)[2]) == Approx(13333).epsilon(0.03));
  // H1's shape: the third bucket is the largest.
  CHECK((*p)[0].demand[2] > (*p)[0].demand[0]);
  CHECK(!SyntheticPopulation("\"H1\",1,2\n", 3, 100, 4).ok());
}

}  // namespace
}  // namespace ppe::replay
