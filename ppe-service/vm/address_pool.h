#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace ppe::vm {

struct Lease {
  std::string ip;
  std::string mac;  // 52:54:00 + the low 24 bits of the address: unique per address
};

// PPE's own IPAM for one service's IPv4 pool; libvirt's test driver enforces none.
class AddressPool {
 public:
  // "192.168.122.64/26": hosts .65 to .126 (network and broadcast excluded).
  static absl::StatusOr<AddressPool> Create(absl::string_view cidr);
  AddressPool(AddressPool&& other) noexcept;

  absl::StatusOr<Lease> Acquire();  // lowest free address; RESOURCE_EXHAUSTED when full
  // Marks an address taken (re-adoption after a restart). False if outside or taken.
  bool Reserve(absl::string_view ip);
  void Release(absl::string_view ip);
  // True when `ip` is one of the pool's addresses (taken or not).
  bool Contains(absl::string_view ip) const;
  size_t capacity() const { return last_ - first_ + 1; }
  size_t in_use() const;

 private:
  AddressPool(uint32_t first, uint32_t last) : first_(first), last_(last) {}

  uint32_t first_, last_;
  mutable absl::Mutex mu_;
  absl::btree_set<uint32_t> used_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ppe::vm
