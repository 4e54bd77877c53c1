#include "ppe-service/resolver/rate_limiter.h"

#include <catch2/catch.hpp>

namespace ppe::resolver {
namespace {

TEST_CASE("token bucket: burst, refill, per key") {
  RateLimiter limiter(/*per_minute=*/60, /*burst=*/3);
  absl::Time t = absl::FromUnixSeconds(1000);
  CHECK(limiter.Allow("a", t));
  CHECK(limiter.Allow("a", t));
  CHECK(limiter.Allow("a", t));
  CHECK_FALSE(limiter.Allow("a", t));
  CHECK(limiter.Allow("b", t));  // another prefix has its own bucket
  CHECK_FALSE(limiter.Allow("a", t + absl::Milliseconds(500)));
  CHECK(limiter.Allow("a", t + absl::Milliseconds(1600)));  // one token per second
}

TEST_CASE("memory stays bounded under a flood of keys") {
  RateLimiter limiter(60, 3, /*max_keys=*/1000);
  absl::Time t = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 100000; ++i) limiter.Allow(std::to_string(i), t);
  CHECK(limiter.size() <= 1001);
}

TEST_CASE("source prefix keys: /24 for IPv4, /56 for IPv6") {
  CHECK(SourcePrefixKey("198.51.100.7/32", "127.0.0.1") ==
        SourcePrefixKey("198.51.100.200/32", ""));
  CHECK(SourcePrefixKey("198.51.100.7/32", "") != SourcePrefixKey("198.51.101.7/32", ""));
  CHECK(SourcePrefixKey("0.0.0.0/0", "10.1.2.3") == SourcePrefixKey("10.1.2.0/24", ""));
  CHECK(SourcePrefixKey("2001:db8:0:100::1/128", "") == SourcePrefixKey("2001:db8:0:1ff::/64", ""));
  CHECK(SourcePrefixKey("garbage", "also garbage").empty());
}

}  // namespace
}  // namespace ppe::resolver
