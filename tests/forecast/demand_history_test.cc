#include "ppe-service/forecast/demand_history.h"

#include <catch2/catch.hpp>
#include <vector>

namespace ppe::forecast {
namespace {

TEST_CASE("DemandHistory keeps the last buckets and fills gaps with zeros", "[history]") {
  DemandHistory h({.capacity = 5, .rollup_factor = 2, .rollup_capacity = 3});
  REQUIRE(h.Add(100, 1).ok());
  REQUIRE(h.Add(100, 2).ok());  // Same bucket accumulates.
  REQUIRE(h.Add(101, 4).ok());
  REQUIRE(h.Add(104, 5).ok());  // 102, 103 are zero.
  CHECK(h.Values() == std::vector<double>{3, 4, 0, 0, 5});
  REQUIRE(h.Add(106, 7).ok());  // Ring drops 100 and 101.
  CHECK(h.Values() == std::vector<double>{0, 0, 5, 0, 7});
  CHECK(h.Tail(2) == std::vector<double>{0, 7});
  CHECK(h.Tail(9) == h.Values());
  CHECK(h.Tail(0).empty());
  CHECK(h.last_bucket() == 106);
  // Coarse buckets [100,101] = 7, [102,103] = 0, [104,105] = 5.
  CHECK(h.Rollup() == std::vector<double>{7, 0, 5});
  CHECK_FALSE(h.Add(101, 1).ok());  // Older than the ring.
  CHECK_FALSE(h.Add(107, -1).ok());
}

TEST_CASE("DemandHistory survives a gap longer than the history", "[history]") {
  DemandHistory h({.capacity = 4, .rollup_factor = 2, .rollup_capacity = 2});
  REQUIRE(h.Add(0, 9).ok());
  REQUIRE(h.Add(1000, 1).ok());
  CHECK(h.Values() == std::vector<double>{0, 0, 0, 1});
  CHECK(h.Rollup() == std::vector<double>{0, 0});
}

TEST_CASE("DemandHistory memory is bounded and stated", "[history]") {
  DemandHistory h;  // Defaults: 3 days of minutes, 8 weeks of hours.
  for (int64_t b = 0; b < 20000; ++b) REQUIRE(h.Add(b, b % 7).ok());
  const size_t bytes = h.MemoryBytes();
  CHECK(bytes == sizeof(DemandHistory) + 4 * (3 * 1440 + 8 * 168));
  CHECK(bytes < 24 * 1024);
  CHECK(h.Values().size() == 3 * 1440);
  const std::vector<double> r = h.Rollup();
  REQUIRE(r.size() == 20000 / 60);
  CHECK(r.back() > 0);
}

}  // namespace
}  // namespace ppe::forecast
