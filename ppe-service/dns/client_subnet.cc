#include "ppe-service/dns/client_subnet.h"

#include "absl/strings/numbers.h"

namespace ppe::dns {
namespace {

uint32_t FullLength(absl::string_view address) {
  return address.find(':') == absl::string_view::npos ? 32 : 128;
}

}  // namespace

uint32_t ClientScope(absl::string_view real_remote, absl::string_view remote) {
  size_t slash = real_remote.find('/');
  uint32_t length = 0;
  if (slash != absl::string_view::npos &&
      absl::SimpleAtoi(real_remote.substr(slash + 1), &length) &&
      length <= FullLength(real_remote)) {
    return length;  // 0 for ECS source /0: the client asked for no tailoring
  }
  if (slash == absl::string_view::npos && !real_remote.empty()) return FullLength(real_remote);
  return FullLength(remote);
}

}  // namespace ppe::dns
