#pragma once

// IPv4 addresses and CIDR pools as plain numbers: what the config validator and
// the VM address pool both need, with nothing heavier than Abseil behind it.
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ppe::net {

// "10.1.2.3" -> 0x0a010203 (host order); nullopt if not a dotted IPv4 address.
std::optional<uint32_t> ParseIpv4(absl::string_view text);
std::string FormatIpv4(uint32_t address);
// A literal IPv4 or IPv6 address.
bool IsIpAddress(absl::string_view text);

// The usable hosts of an IPv4 pool: network and broadcast excluded.
struct Ipv4HostRange {
  uint32_t first = 0;
  uint32_t last = 0;
  int prefix_length = 0;
};

// "192.168.122.64/26" -> hosts .65 to .126. INVALID_ARGUMENT "address_pool '...'
// must be an IPv4 CIDR from /8 to /30" otherwise.
absl::StatusOr<Ipv4HostRange> ParseIpv4Pool(absl::string_view cidr);

}  // namespace ppe::net
