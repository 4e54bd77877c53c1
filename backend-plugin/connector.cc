#include "backend-plugin/connector.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "absl/strings/string_view.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ppe-service/common/log.h"
#include "ppe-service/common/status_macros.h"

namespace ppe::plugin {
namespace {

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string TooLong() {
  return ReplyFalse(
      absl::StrCat("ppe-backend: request line longer than ", kMaxLineBytes, " bytes"));
}

}  // namespace

void ServeStream(int in_fd, int out_fd, Backend& backend) {
  std::string buffer;
  std::string reply;
  bool skipping = false;  // inside an oversized line: drop bytes until its newline
  char chunk[16384];
  while (true) {
    ssize_t n = read(in_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buffer.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    while (true) {
      size_t nl = buffer.find('\n', start);
      if (nl == std::string::npos) break;
      absl::string_view line(buffer.data() + start, nl - start);
      start = nl + 1;
      if (skipping) {
        skipping = false;
        continue;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      reply = line.size() > kMaxLineBytes ? TooLong() : backend.Handle(line);
      reply.push_back('\n');
      if (!WriteAll(out_fd, reply)) return;
    }
    buffer.erase(0, start);
    if (buffer.size() > kMaxLineBytes && !skipping) {
      buffer.clear();
      skipping = true;
      reply = TooLong();
      reply.push_back('\n');
      if (!WriteAll(out_fd, reply)) return;
    } else if (skipping) {
      buffer.clear();
    }
  }
}

UnixSocketServer::~UnixSocketServer() {
  Stop();
  if (listen_fd_ >= 0 && owns_socket_) close(listen_fd_);
}

absl::StatusOr<int> ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", path));
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  unlink(path.c_str());  // a stale socket from a previous run
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    absl::Status error = absl::InternalError(absl::StrCat("bind ", path, ": ", strerror(errno)));
    close(fd);
    return error;
  }
  chmod(path.c_str(), 0660);
  if (listen(fd, 128) != 0) {
    absl::Status error = absl::InternalError(absl::StrCat("listen ", path, ": ", strerror(errno)));
    close(fd);
    return error;
  }
  return fd;
}

absl::Status UnixSocketServer::Listen() {
  PPE_ASSIGN_OR_RETURN(int fd, ListenUnix(path_));
  listen_fd_ = fd;
  return absl::OkStatus();
}

void UnixSocketServer::Serve() {
  while (!stopping_.load()) {
    // Polled so that Stop() needs no shutdown(2), which would also close the
    // socket for the processes sharing it (the supervisor's next worker).
    pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      if (!stopping_.load()) spdlog::error("accept on {}: {}", path_, strerror(errno));
      return;
    }
    std::thread([this, fd] {
      ServeStream(fd, fd, backend_);
      close(fd);
    }).detach();
  }
}

void UnixSocketServer::Stop() {
  if (stopping_.exchange(true) || !owns_socket_) return;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  unlink(path_.c_str());
}

}  // namespace ppe::plugin
