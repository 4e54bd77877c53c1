#include "ppe-service/vm/address_pool.h"

#include <arpa/inet.h>
#include "absl/strings/string_view.h"

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ppe::vm {
namespace {

std::optional<uint32_t> ParseV4(absl::string_view text) {
  in_addr a;
  if (inet_pton(AF_INET, std::string(text).c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string FormatV4(uint32_t v) {
  return absl::StrFormat("%d.%d.%d.%d", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
}

}  // namespace

absl::StatusOr<AddressPool> AddressPool::Create(absl::string_view cidr) {
  size_t slash = cidr.find('/');
  int len;
  std::optional<uint32_t> base = ParseV4(cidr.substr(0, slash));
  if (slash == absl::string_view::npos || !base ||
      !absl::SimpleAtoi(cidr.substr(slash + 1), &len) || len < 8 || len > 30) {
    return absl::InvalidArgumentError(
        absl::StrCat("address_pool '", cidr, "' must be an IPv4 CIDR from /8 to /30"));
  }
  uint32_t mask = len == 0 ? 0 : ~0u << (32 - len);
  uint32_t network = *base & mask;
  return AddressPool(network + 1, (network | ~mask) - 1);
}

AddressPool::AddressPool(AddressPool&& other) noexcept : first_(other.first_), last_(other.last_) {
  absl::MutexLock lock(&other.mu_);
  used_ = std::move(other.used_);
}

absl::StatusOr<Lease> AddressPool::Acquire() {
  absl::MutexLock lock(&mu_);
  uint32_t candidate = first_;
  for (uint32_t u : used_) {  // sorted: the first gap is the lowest free address
    if (u != candidate) break;
    ++candidate;
  }
  if (candidate > last_) return absl::ResourceExhaustedError("address pool exhausted");
  used_.insert(candidate);
  return Lease{FormatV4(candidate),
               absl::StrFormat("52:54:00:%02x:%02x:%02x", (candidate >> 16) & 255,
                               (candidate >> 8) & 255, candidate & 255)};
}

bool AddressPool::Reserve(absl::string_view ip) {
  std::optional<uint32_t> v = ParseV4(ip);
  if (!v || *v < first_ || *v > last_) return false;
  absl::MutexLock lock(&mu_);
  return used_.insert(*v).second;
}

void AddressPool::Release(absl::string_view ip) {
  if (std::optional<uint32_t> v = ParseV4(ip)) {
    absl::MutexLock lock(&mu_);
    used_.erase(*v);
  }
}

size_t AddressPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return used_.size();
}

}  // namespace ppe::vm
