// ppe-server: the Pre-Provisioning Engine. Wiring only.
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "ppe-service/common/log.h"
#include "ppe-service/config/config_loader.h"
#include "ppe-service/server/ppe_app.h"

namespace {

void Usage() { std::fprintf(stderr, "usage: ppe-server --config FILE [--listen ADDR]\n"); }

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, listen;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "--config" || arg == "--listen") && i + 1 < argc) {
      (arg == "--config" ? config_path : listen) = argv[++i];
    } else {
      Usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    Usage();
    return 2;
  }
  absl::StatusOr<ppe::config::v1::PpeConfig> config = ppe::config::LoadPpeConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "ppe-server: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (!listen.empty()) config->set_listen(listen);
  ppe::InitLogging("ppe-server", config->log_level());

  // SIGTERM/SIGINT: shut the server down from a thread that waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<ppe::server::PpeApp>> app =
      ppe::server::PpeApp::Create(*std::move(config));
  if (!app.ok()) {
    std::fprintf(stderr, "ppe-server: %s\n", std::string(app.status().message()).c_str());
    return 1;
  }
  std::thread([&signals, &app] {
    int sig;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: shutting down", sig);
    (*app)->Shutdown();
  }).detach();
  (*app)->Wait();
  return 0;
}
