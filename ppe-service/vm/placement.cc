#include "ppe-service/vm/placement.h"

#include <algorithm>

namespace ppe::vm {

std::pair<std::string, std::string> RegionDistances::Key(absl::string_view a, absl::string_view b) {
  if (b < a) std::swap(a, b);
  return {std::string(a), std::string(b)};
}

void RegionDistances::Set(absl::string_view a, absl::string_view b, uint32_t distance) {
  if (a == kAny || b == kAny) {
    default_ = distance;
    return;
  }
  distances_[Key(a, b)] = distance;
}

std::optional<uint32_t> RegionDistances::Get(absl::string_view a, absl::string_view b) const {
  if (a == b) return 0;
  if (auto it = distances_.find(Key(a, b)); it != distances_.end()) return it->second;
  return default_;
}

Placer::Placer(std::vector<HostCapacity> hosts, RegionDistances distances)
    : hosts_(std::move(hosts)), distances_(std::move(distances)) {}

bool Placer::Fits(size_t host, VmSize size, VmSize used) const {
  const HostCapacity& h = hosts_[host];
  return (h.vcpus == 0 || used.vcpus + size.vcpus <= h.vcpus) &&
         (h.memory_mib == 0 || used.memory_mib + size.memory_mib <= h.memory_mib);
}

std::optional<uint32_t> Placer::Distance(absl::string_view region, size_t host) const {
  const HostCapacity& h = hosts_[host];
  if (region.empty() || h.region.empty()) return 0;
  return distances_.Get(region, h.region);
}

double Placer::Load(size_t host, VmSize used) const {
  const HostCapacity& h = hosts_[host];
  double cpu = h.vcpus == 0 ? 0 : static_cast<double>(used.vcpus) / static_cast<double>(h.vcpus);
  double mem = h.memory_mib == 0
                   ? 0
                   : static_cast<double>(used.memory_mib) / static_cast<double>(h.memory_mib);
  return std::max(cpu, mem);
}

std::optional<Placer::Choice> Placer::Choose(absl::string_view region, VmSize size,
                                             absl::Span<const HostLoad> loads) const {
  std::optional<Choice> best;
  double best_load = 0;
  for (size_t i = 0; i < hosts_.size() && i < loads.size(); ++i) {
    if (!loads[i].available || !Fits(i, size, loads[i].used)) continue;
    std::optional<uint32_t> d = Distance(region, i);
    if (!d) continue;
    double load = Load(i, loads[i].used);
    if (!best || *d < best->distance || (*d == best->distance && load < best_load)) {
      best = Choice{.host = i, .distance = *d};
      best_load = load;
    }
  }
  return best;
}

}  // namespace ppe::vm
