#include "ppe-service/vm/address_pool.h"

#include <set>

#include <catch2/catch.hpp>

namespace ppe::vm {
namespace {

TEST_CASE("addresses come lowest first, are unique, and are reused after release") {
  auto pool = AddressPool::Create("192.168.122.64/29");
  REQUIRE(pool.ok());
  CHECK(pool->capacity() == 6);
  std::set<std::string> ips, macs;
  for (int i = 0; i < 6; ++i) {
    auto lease = pool->Acquire();
    REQUIRE(lease.ok());
    ips.insert(lease->ip);
    macs.insert(lease->mac);
  }
  CHECK(ips.size() == 6);
  CHECK(macs.size() == 6);
  CHECK(*ips.begin() == "192.168.122.65");
  CHECK(ips.count("192.168.122.64") == 0);  // network
  CHECK(ips.count("192.168.122.71") == 0);  // broadcast
  CHECK(pool->Acquire().status().code() == absl::StatusCode::kResourceExhausted);
  pool->Release("192.168.122.67");
  auto again = pool->Acquire();
  REQUIRE(again.ok());
  CHECK(again->ip == "192.168.122.67");
  CHECK(again->mac == "52:54:00:a8:7a:43");
}

TEST_CASE("reserve marks addresses taken; bad pools are refused") {
  auto pool = AddressPool::Create("10.0.0.0/30");
  REQUIRE(pool.ok());
  CHECK(pool->Reserve("10.0.0.1"));
  CHECK_FALSE(pool->Reserve("10.0.0.1"));
  CHECK_FALSE(pool->Reserve("10.0.1.1"));
  CHECK(pool->Acquire()->ip == "10.0.0.2");
  CHECK_FALSE(AddressPool::Create("10.0.0.0").ok());
  CHECK_FALSE(AddressPool::Create("10.0.0.0/31").ok());
  CHECK_FALSE(AddressPool::Create("2001:db8::/64").ok());
}

}  // namespace
}  // namespace ppe::vm
