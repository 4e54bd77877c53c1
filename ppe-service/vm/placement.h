#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ppe::vm {

// How far apart two regions are, as the operator configures it. Symmetric; a
// region is at distance 0 from itself; a pair with no entry is unreachable
// unless a default ("*" on one side) is set. Region names are compared as given
// (profiles carry lower-case regions).
class RegionDistances {
 public:
  static constexpr absl::string_view kAny = "*";

  // `a` or `b` may be "*": the distance of any pair without an entry of its own.
  void Set(absl::string_view a, absl::string_view b, uint32_t distance);
  // nullopt: the regions are not reachable from each other.
  std::optional<uint32_t> Get(absl::string_view a, absl::string_view b) const;

 private:
  static std::pair<std::string, std::string> Key(absl::string_view a, absl::string_view b);
  absl::flat_hash_map<std::pair<std::string, std::string>, uint32_t> distances_;
  std::optional<uint32_t> default_;
};

// A hypervisor host as placement sees it. Capacity 0 means not limited.
struct HostCapacity {
  std::string name{};
  std::string region{};  // empty: serves every region at distance 0 (the implicit host)
  uint64_t vcpus = 0;
  uint64_t memory_mib = 0;
};

// What one VM takes from its host.
struct VmSize {
  uint64_t vcpus = 0;
  uint64_t memory_mib = 0;
};

// A host's state at the moment of a placement: whether it may take VMs at all
// (up, reconciled, serving the service, with a free address) and what its
// existing VMs already use.
struct HostLoad {
  bool available = false;
  VmSize used{};
};

// Chooses a host for a VM: a host in the profile's region with room; else the
// host with room in the nearest region by the distance table; else none.
// Room is capacity minus what existing VMs use: never an overcommit. Among
// hosts at the same distance the least loaded (largest share of its vCPUs and
// memory still free) wins, then the first in configuration order.
class Placer {
 public:
  Placer(std::vector<HostCapacity> hosts, RegionDistances distances);

  struct Choice {
    size_t host = 0;        // index into hosts()
    uint32_t distance = 0;  // 0: in the profile's region
  };
  // `loads` is index-aligned with hosts(). nullopt: nowhere (the caller answers
  // the fallback). An empty `region` (a warm spare, owned by no profile yet) is
  // at distance 0 from every host.
  std::optional<Choice> Choose(absl::string_view region, VmSize size,
                               absl::Span<const HostLoad> loads) const;
  // True when `size` more fits on `host` beside `used`.
  bool Fits(size_t host, VmSize size, VmSize used) const;
  // Distance from `region` to the host's region; nullopt when unreachable.
  std::optional<uint32_t> Distance(absl::string_view region, size_t host) const;

  const std::vector<HostCapacity>& hosts() const { return hosts_; }

 private:
  double Load(size_t host, VmSize used) const;  // the larger of its vCPU and memory shares

  std::vector<HostCapacity> hosts_;
  RegionDistances distances_;
};

}  // namespace ppe::vm
