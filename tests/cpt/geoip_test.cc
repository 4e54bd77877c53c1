// A MaxMind DB made by tests/cpt/make_test_mmdb.pl (MaxMind's own writer),
// read by libmaxminddb through GeoIpDb and the RegionTable.
#include "ppe-service/cpt/geoip_db.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include "tests/store/store_test_util.h"

namespace ppe::cpt {
namespace {

// A test MaxMind DB in `dir` (tests/cpt/make_test_mmdb.pl); its path.
std::string MakeDb(const std::string& dir) {
  REQUIRE_FALSE(dir.empty());
  std::string path = dir + "/test.mmdb";
  std::string cmd = std::string("perl ") + PPE_SOURCE_DIR + "/tests/cpt/make_test_mmdb.pl " + path;
  REQUIRE(std::system(cmd.c_str()) == 0);
  return path;
}

TEST_CASE("GeoIP: regions from a MaxMind DB, after the CIDR rules") {
  store::testing::TempDir dir;  // removed with the test
  std::string path = MakeDb(dir.path());
  auto db = GeoIpDb::Open(path, "");
  REQUIRE(db.ok());
  CHECK((*db)->Lookup(*Prefix::Parse("198.51.100.0/24")) == std::optional<std::string>("FR"));
  CHECK((*db)->Lookup(*Prefix::Parse("2001:db8:1::/48")) == std::optional<std::string>("DE"));
  CHECK_FALSE((*db)->Lookup(*Prefix::Parse("203.0.113.7")).has_value());

  RegionTable table;
  REQUIRE(table.Add("198.51.100.128/25", "eu-west-override").ok());
  table.SetGeoIp(std::move(*db));
  CHECK(table.Lookup(*Prefix::Parse("198.51.100.200/32")) == "eu-west-override");
  CHECK(table.Lookup(*Prefix::Parse("198.51.100.7/32")) == "FR");
  CHECK(table.Lookup(*Prefix::Parse("203.0.113.7/32")) == "unknown");

  CHECK_FALSE(GeoIpDb::Open(path + ".missing", "").ok());
  CHECK(GeoIpDb::Open(path, "continent.code").ok());
  unlink(path.c_str());
}

}  // namespace
}  // namespace ppe::cpt
