#include "backend-plugin/supervisor.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "absl/time/clock.h"
#include "ppe-service/common/log.h"

namespace ppe::plugin {
namespace {

// Forks the worker; -1 if fork failed.
pid_t Start(int listen_fd, const std::function<int(int)>& worker, pid_t parent) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  // The worker: leave when the supervisor dies (a kill -9 of it), so a
  // restarted supervisor does not find an orphan still serving the old socket.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) _exit(0);
  _exit(worker(listen_fd));
}

// Stops the worker: SIGTERM, then SIGKILL if it has not exited within 5 s.
void Stop(pid_t pid) {
  kill(pid, SIGTERM);
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    absl::SleepFor(absl::Milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string Describe(int status) {
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

int Supervise(int listen_fd, const std::function<int(int)>& worker,
              const SupervisorOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGCHLD);
  sigprocmask(SIG_BLOCK, &signals, nullptr);

  const pid_t self = getpid();
  absl::Duration backoff = absl::ZeroDuration();
  absl::Time started = absl::Now();
  pid_t child = Start(listen_fd, worker, self);
  int restarts = 0;
  while (true) {
    siginfo_t info;
    timespec wait = absl::ToTimespec(child > 0 ? absl::Seconds(1) : backoff);
    int sig = sigtimedwait(&signals, &info, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      if (child > 0) Stop(child);
      spdlog::info("supervisor: stopped by {}", strsignal(sig));
      return 0;
    }
    if (sig == SIGCHLD && child > 0) {
      int status = 0;
      pid_t done = waitpid(child, &status, WNOHANG);
      if (done != child) continue;
      child = -1;
      absl::Duration lived = absl::Now() - started;
      backoff = lived >= options.stable
                    ? absl::ZeroDuration()
                    : std::clamp(backoff * 2, options.min_backoff, options.max_backoff);
      spdlog::error("supervisor: worker {} {} after {}; restarting in {}", done, Describe(status),
                    absl::FormatDuration(lived), absl::FormatDuration(backoff));
      if (backoff > absl::ZeroDuration()) continue;  // the timeout below restarts it
    } else if (sig < 0 && errno != EAGAIN && errno != EINTR) {
      spdlog::error("supervisor: sigtimedwait: {}", strerror(errno));
    }
    if (child < 0 && (sig < 0 || backoff == absl::ZeroDuration())) {
      started = absl::Now();
      child = Start(listen_fd, worker, self);
      if (child < 0) {
        spdlog::error("supervisor: fork: {}", strerror(errno));
        backoff = options.max_backoff;
      } else {
        spdlog::info("supervisor: worker {} started (restart {})", child, ++restarts);
      }
    }
  }
}

}  // namespace ppe::plugin
