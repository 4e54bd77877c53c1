#include "ppe-service/cpt/region_table.h"

#include <catch2/catch.hpp>

namespace ppe::cpt {
namespace {

TEST_CASE("longest prefix wins, for IPv4 and IPv6") {
  RegionTable t;
  REQUIRE(t.Add("10.0.0.0/8", "ten").ok());
  REQUIRE(t.Add("10.1.0.0/16", "ten-one").ok());
  REQUIRE(t.Add("2001:db8::/32", "doc6").ok());
  CHECK(t.Lookup(*Prefix::Parse("10.1.2.0/24")) == "ten-one");
  CHECK(t.Lookup(*Prefix::Parse("10.2.0.0/24")) == "ten");
  CHECK(t.Lookup(*Prefix::Parse("10.1.2.3")) == "ten-one");
  CHECK(t.Lookup(*Prefix::Parse("2001:db8:1::/48")) == "doc6");
  CHECK(t.Lookup(*Prefix::Parse("192.0.2.1/32")) == "unknown");
  CHECK(t.Lookup(*Prefix::Parse("::ffff:10.1.0.1")) == "unknown");  // v6 query, v4 rule
}

TEST_CASE("the scope is the region's CIDR, lengthened around more specific rules") {
  RegionTable t;
  REQUIRE(t.Add("10.0.0.0/8", "ten").ok());
  REQUIRE(t.Add("10.1.0.0/16", "ten-one").ok());
  REQUIRE(t.Add("2001:db8::/32", "doc6").ok());
  auto at = [&](const char* p, int def = 24) { return t.LookupWithScope(*Prefix::Parse(p), def); };
  CHECK(at("10.1.2.0/24").region == "ten-one");
  CHECK(at("10.1.2.0/24").scope == 16);
  // In 10/8 but not 10.1/16: 10.0/16 shares 15 bits with 10.1/16, so /16;
  // 10.128/16 shares 8, so /9 is wholly "ten".
  CHECK(at("10.0.5.0/24").region == "ten");
  CHECK(at("10.0.5.0/24").scope == 16);
  CHECK(at("10.128.0.0/24").scope == 9);
  CHECK(at("2001:db8:1::/48", 56).scope == 32);
  // No rule: the default length, unless a rule lies inside that prefix.
  CHECK(at("192.0.2.1/32").region == "unknown");
  CHECK(at("192.0.2.1/32").scope == 24);
  CHECK(at("2001:db9::1", 56).scope == 56);
  REQUIRE(t.Add("192.0.2.128/25", "upper").ok());
  CHECK(at("192.0.2.1/32").scope == 25);
  CHECK(at("192.0.2.200").region == "upper");
  CHECK(at("192.0.2.200").scope == 25);
}

TEST_CASE("prefix parsing") {
  auto p = Prefix::Parse("198.51.100.0/24");
  REQUIRE(p.ok());
  CHECK(p->v4);
  CHECK(p->length == 24);
  CHECK(Prefix::Parse("1.2.3.4")->length == 32);
  CHECK(Prefix::Parse("::1")->length == 128);
  CHECK_FALSE(Prefix::Parse("1.2.3.4/33").ok());
  CHECK_FALSE(Prefix::Parse("not-an-ip/8").ok());
  CHECK_FALSE(Prefix::Parse("1.2.3.4/x").ok());
  RegionTable t;
  CHECK_FALSE(t.Add("300.1.1.1/8", "bad").ok());
}

}  // namespace
}  // namespace ppe::cpt
