#include "ppe-service/forecast/series_io.h"

#include <catch2/catch.hpp>
#include <cmath>

namespace ppe::forecast {
namespace {

TEST_CASE("ParseSeries reads numbers and timestamp,count CSV", "[io]") {
  CHECK(*ParseSeries("1\n2.5\n\n3\n") == std::vector<double>{1, 2.5, 3});
  CHECK(*ParseSeries("period,count\n2024-01-01 00:00:00,5\n2024-01-01 00:01:00,7\n") ==
        std::vector<double>{5, 7});
  auto missing = ParseSeries("t1,4\nt2,\nt3,8\n");
  REQUIRE(missing.ok());
  CHECK(std::isnan((*missing)[1]));
  CHECK(*FillMissing(*missing) == std::vector<double>{4, 6, 8});
}

TEST_CASE("ParseSeries rejects bad input with a clear message", "[io]") {
  auto empty = ParseSeries("\n\n");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().message() == "the series is empty");
  auto bad = ParseSeries("1\nabc\n3\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()).find("line 2") != std::string::npos);
  CHECK_FALSE(ParseSeries("t,1\nt,x\n").ok());
  CHECK_FALSE(FillMissing({NAN, NAN}).ok());
}

}  // namespace
}  // namespace ppe::forecast
