#pragma once

#include <functional>

#include "absl/time/time.h"

namespace ppe::plugin {

struct SupervisorOptions {
  // A worker that lived less than `stable` is restarted after a delay that
  // doubles from `min_backoff` up to `max_backoff`; one that lived longer is
  // restarted at once.
  absl::Duration min_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration stable = absl::Seconds(10);
};

// Keeps a worker process serving `listen_fd`, a listening socket bound by the
// caller. Forks `worker(listen_fd)` (its return value is the child's exit
// code) and forks a new one whenever it dies, so connections queue on the
// socket instead of being refused while the worker restarts. SIGTERM or
// SIGINT to this process stops the worker (SIGTERM, then SIGKILL after 5 s)
// and returns 0. The worker is sent SIGTERM if this process dies.
//
// Call it before creating any thread: a forked child holds only the calling
// thread. It blocks SIGTERM, SIGINT and SIGCHLD; the worker inherits that mask.
int Supervise(int listen_fd, const std::function<int(int listen_fd)>& worker,
              const SupervisorOptions& options = {});

}  // namespace ppe::plugin
