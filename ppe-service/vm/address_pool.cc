#include "ppe-service/vm/address_pool.h"

#include <optional>

#include "absl/strings/str_format.h"
#include "ppe-service/common/status_macros.h"
#include "ppe-service/net/ipv4_cidr.h"

namespace ppe::vm {

using net::FormatIpv4;
using net::ParseIpv4;

absl::StatusOr<AddressPool> AddressPool::Create(absl::string_view cidr) {
  PPE_ASSIGN_OR_RETURN(net::Ipv4HostRange hosts, net::ParseIpv4Pool(cidr));
  return AddressPool(hosts.first, hosts.last);
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
  return Lease{FormatIpv4(candidate),
               absl::StrFormat("52:54:00:%02x:%02x:%02x", (candidate >> 16) & 255,
                               (candidate >> 8) & 255, candidate & 255)};
}

bool AddressPool::Reserve(absl::string_view ip) {
  std::optional<uint32_t> v = ParseIpv4(ip);
  if (!v || *v < first_ || *v > last_) return false;
  absl::MutexLock lock(&mu_);
  return used_.insert(*v).second;
}

void AddressPool::Release(absl::string_view ip) {
  if (std::optional<uint32_t> v = ParseIpv4(ip)) {
    absl::MutexLock lock(&mu_);
    used_.erase(*v);
  }
}

bool AddressPool::Contains(absl::string_view ip) const {
  std::optional<uint32_t> v = ParseIpv4(ip);
  return v && *v >= first_ && *v <= last_;
}

size_t AddressPool::in_use() const {
  absl::MutexLock lock(&mu_);
  return used_.size();
}

}  // namespace ppe::vm
