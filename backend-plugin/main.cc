// ppe-backend: the PowerDNS remote backend that forwards look-ups to the PPE.
//   unix connector: ppe-backend --config plugin.conf         (pdns connects to `socket`)
//   pipe connector: ppe-backend --config plugin.conf --pipe  (pdns starts it)
// With the unix connector a supervisor process binds the socket and forks the
// worker, again whenever it dies (--no-supervisor: serve in this process).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "backend-plugin/answer_table.h"
#include "backend-plugin/answer_watch.h"
#include "backend-plugin/backend.h"
#include "backend-plugin/connector.h"
#include "backend-plugin/demand_reporter.h"
#include "backend-plugin/plugin_config.h"
#include "backend-plugin/ppe_client.h"
#include "backend-plugin/supervisor.h"
#include "backend-plugin/zone_cache.h"
#include "ppe-service/common/log.h"

namespace {

using ppe::plugin::PpeClient;
using ppe::plugin::ZoneCache;

// Fetches the zones from the PPE, saves them, and keeps them fresh.
void RefreshZones(PpeClient& client, ZoneCache& zones, const std::string& cache_file,
                  absl::Duration deadline) {
  absl::StatusOr<ppe::v1::ListZonesResponse> z = client.ListZones(deadline);
  if (!z.ok()) {
    spdlog::warn("cannot fetch zones from the PPE: {}", z.status().message());
    return;
  }
  zones.Set(*z);
  if (!cache_file.empty()) {
    if (absl::Status s = zones.Save(cache_file); !s.ok()) spdlog::warn("{}", s.message());
  }
}

// One worker: serves pdns on stdin/stdout (pipe connector, listen_fd < 0) or
// on the listening unix socket the supervisor bound.
int RunWorker(const ppe::config::v1::PluginConfig& config, int listen_fd) {
  bool pipe_mode = listen_fd < 0;
  PpeClient client({.target = config.ppe_target(),
                    .deadline = absl::Milliseconds(config.deadline_ms()),
                    .breaker_failures = static_cast<int>(config.breaker_failures()),
                    .breaker_open = absl::Milliseconds(config.breaker_open_ms())});
  ZoneCache zones;
  RefreshZones(client, zones, config.zone_cache_file(), absl::Seconds(2));
  if (zones.empty() && !config.zone_cache_file().empty()) {
    if (absl::Status s = zones.Load(config.zone_cache_file()); s.ok()) {
      spdlog::info("serving zones from {} until the PPE answers", config.zone_cache_file());
    }
  }
  if (zones.empty())
    spdlog::error("no zone data yet: pdns will see no zones until the PPE answers");

  std::thread([&] {
    while (true) {
      absl::SleepFor(zones.empty() ? absl::Seconds(1) : absl::Seconds(config.zone_refresh_s()));
      RefreshZones(client, zones, config.zone_cache_file(), absl::Seconds(2));
    }
  }).detach();

  // The data plane: answers streamed from the PPE, local answers counted back.
  std::unique_ptr<ppe::plugin::AnswerTable> table;
  std::unique_ptr<ppe::plugin::AnswerWatch> watch;
  std::unique_ptr<ppe::plugin::DemandReporter> demand;
  if (!config.disable_answer_table()) {
    table = std::make_unique<ppe::plugin::AnswerTable>(
        ppe::plugin::AnswerTable::Options{.stale_serve = absl::Seconds(config.stale_serve_s())});
    watch = std::make_unique<ppe::plugin::AnswerWatch>(
        ppe::plugin::AnswerWatch::Options{.target = config.ppe_target()}, *table,
        [&zones, file = config.zone_cache_file()](const ppe::v1::ListZonesResponse& z) {
          zones.Set(z);
          if (!file.empty()) {
            if (absl::Status s = zones.Save(file); !s.ok()) spdlog::warn("{}", s.message());
          }
        });
    watch->Start();
    demand = std::make_unique<ppe::plugin::DemandReporter>(ppe::plugin::DemandReporter::Options{
        .target = config.ppe_target(), .interval = absl::Milliseconds(config.demand_report_ms())});
    demand->Start();
  }
  ppe::plugin::Backend backend(zones, client, table.get(), demand.get());
  if (pipe_mode) {
    ppe::plugin::ServeStream(0, 1, backend);
    if (demand) demand->Stop();
    return 0;
  }
  ppe::plugin::UnixSocketServer server(config.socket(), backend);
  server.Adopt(listen_fd);
  std::thread([&server] {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    int sig;
    sigwait(&signals, &sig);
    server.Stop();
  }).detach();
  spdlog::info("ppe-backend serving {} for pdns, PPE at {}", config.socket(), config.ppe_target());
  server.Serve();
  if (demand) demand->Stop();  // the last counts reach the PPE
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool pipe_mode = false;
  bool supervise = true;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--pipe") {
      pipe_mode = true;
    } else if (arg == "--no-supervisor") {
      supervise = false;
    } else {
      std::fprintf(stderr, "usage: ppe-backend --config FILE [--pipe | --no-supervisor]\n");
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fprintf(stderr, "usage: ppe-backend --config FILE [--pipe | --no-supervisor]\n");
    return 2;
  }
  absl::StatusOr<ppe::config::v1::PluginConfig> config = ppe::plugin::LoadPluginConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "ppe-backend: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (!pipe_mode && config->socket().empty()) {
    std::fprintf(stderr, "ppe-backend: %s: socket: is required without --pipe\n",
                 config_path.c_str());
    return 1;
  }
  ppe::InitLogging("ppe-backend", config->log_level());
  // Debian's Abseil is built with mutex deadlock detection on, which records
  // every lock in a graph: on the look-up path (answer-table shards, zone
  // snapshot) that was a hot spot in perf. The thread-safety annotations, checked
  // by clang, are the plugin's guard instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  signal(SIGPIPE, SIG_IGN);
  // SIGTERM/SIGINT are taken by a thread with sigwait: block them everywhere first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (!pipe_mode) pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (pipe_mode) return RunWorker(*config, -1);
  absl::StatusOr<int> listen_fd = ppe::plugin::ListenUnix(config->socket());
  if (!listen_fd.ok()) {
    std::fprintf(stderr, "ppe-backend: %s\n", std::string(listen_fd.status().message()).c_str());
    return 1;
  }
  // A supervisor holds the socket and keeps a worker serving it: a dead worker
  // costs pdns a reconnect to the same socket, not an outage.
  int code =
      supervise ? ppe::plugin::Supervise(*listen_fd, [&](int fd) { return RunWorker(*config, fd); })
                : RunWorker(*config, *listen_fd);
  unlink(config->socket().c_str());
  return code;
}
