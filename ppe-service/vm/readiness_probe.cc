#include "ppe-service/vm/readiness_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ppe::vm {
namespace {

// Closes the descriptor on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status ErrnoStatus(const std::string& target, int err) {
  std::string text = absl::StrCat(target, ": ", std::strerror(err));
  if (err == ETIMEDOUT) return absl::DeadlineExceededError(text);
  return absl::UnavailableError(text);
}

}  // namespace

absl::Status ProbeTcp(const std::string& ip, int port, absl::Duration timeout) {
  if (port <= 0 || port > 65535) return absl::InvalidArgumentError(absl::StrCat("port ", port));
  const std::string target = absl::StrCat(ip, ":", port);
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    addr_len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    addr_len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not an IP address: '", ip, "'"));
  }

  Fd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) == 0) {
    return absl::OkStatus();
  }
  if (errno != EINPROGRESS) return ErrnoStatus(target, errno);

  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    pollfd pfd{.fd = fd.get(), .events = POLLOUT, .revents = 0};
    const int n = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
    if (n == 0) return absl::DeadlineExceededError(absl::StrCat(target, ": no answer"));
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err == 0) return absl::OkStatus();
    return ErrnoStatus(target, err);
  }
}

constexpr absl::Duration kMaxProbeTime = absl::Milliseconds(250);

absl::Status WaitReady(const std::string& ip, int port, absl::Time deadline,
                       absl::Duration interval) {
  absl::Status last = absl::DeadlineExceededError("deadline already passed");
  while (true) {
    const absl::Time now = absl::Now();
    if (now >= deadline) break;
    // A SYN sent before the guest's NIC is up is lost, and the kernel would
    // resend it only after 1 s: cap each probe and send a fresh one instead.
    const absl::Time probe_start = now;
    last = ProbeTcp(ip, port, std::min(deadline - now, kMaxProbeTime));
    if (last.ok()) return last;
    if (absl::IsInvalidArgument(last)) return last;
    const absl::Time next = probe_start + interval;
    if (next >= deadline) break;
    absl::SleepFor(next - absl::Now());
  }
  return absl::DeadlineExceededError(
      absl::StrCat(ip, ":", port, " not ready before the deadline: ", last.message()));
}

}  // namespace ppe::vm
