#include "ppe-service/net/ipv4_cidr.h"

#include <arpa/inet.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ppe::net {

std::optional<uint32_t> ParseIpv4(absl::string_view text) {
  in_addr a;
  if (inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string FormatIpv4(uint32_t v) {
  return absl::StrFormat("%d.%d.%d.%d", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
}

bool IsIpAddress(absl::string_view text) {
  std::string s(text);
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, s.c_str(), &a4) == 1 || inet_pton(AF_INET6, s.c_str(), &a6) == 1;
}

absl::StatusOr<Ipv4HostRange> ParseIpv4Pool(absl::string_view cidr) {
  size_t slash = cidr.find('/');
  int len;
  std::optional<uint32_t> base = ParseIpv4(cidr.substr(0, slash));
  if (slash == absl::string_view::npos || !base ||
      !absl::SimpleAtoi(cidr.substr(slash + 1), &len) || len < 8 || len > 30) {
    return absl::InvalidArgumentError(
        absl::StrCat("address_pool '", cidr, "' must be an IPv4 CIDR from /8 to /30"));
  }
  uint32_t mask = ~0u << (32 - len);
  uint32_t network = *base & mask;
  return Ipv4HostRange{network + 1, (network | ~mask) - 1, len};
}

}  // namespace ppe::net
