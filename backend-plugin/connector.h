#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backend-plugin/backend.h"

namespace ppe::plugin {

// Longest request line accepted; longer ones get a `false` reply and are skipped.
inline constexpr size_t kMaxLineBytes = 1 << 20;

// Serves one pdns connection: reads request lines from `in_fd`, writes one
// reply line each to `out_fd`, until EOF or an I/O error. Calls are strictly
// sequential on a connection, as pdns makes them.
void ServeStream(int in_fd, int out_fd, Backend& backend);

// Binds a listening unix socket at `path` (replacing a stale socket file).
absl::StatusOr<int> ListenUnix(const std::string& path);

// The unix connector: pdns connects to this socket (one connection per pdns
// backend instance); each connection gets its own thread.
class UnixSocketServer {
 public:
  UnixSocketServer(std::string path, Backend& backend)
      : path_(std::move(path)), backend_(backend) {}
  ~UnixSocketServer();

  absl::Status Listen();  // binds (replacing a stale socket file) and listens
  // Serves a socket another process bound and owns (the supervisor's): Stop()
  // then leaves the socket open and its file in place for the next worker.
  void Adopt(int listen_fd) { listen_fd_ = listen_fd, owns_socket_ = false; }
  void Serve();  // accept loop; returns after Stop()
  void Stop();

 private:
  std::string path_;
  Backend& backend_;
  int listen_fd_ = -1;
  bool owns_socket_ = true;
  std::atomic<bool> stopping_{false};
};

}  // namespace ppe::plugin
