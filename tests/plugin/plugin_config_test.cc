#include "backend-plugin/plugin_config.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

namespace ppe::plugin {
namespace {

TEST_CASE("plugin config gets its defaults") {
  auto c = ParsePluginConfig("socket: \"/tmp/s\"", "p.conf");
  REQUIRE(c.ok());
  CHECK(c->socket() == "/tmp/s");
  CHECK(c->ppe_target() == "127.0.0.1:50051");
  CHECK(c->deadline_ms() == 300);
  CHECK(c->zone_refresh_s() == 30);
  CHECK(c->breaker_failures() == 5);
  CHECK(c->breaker_open_ms() == 1000);
}

TEST_CASE("bad plugin configs are refused with the file, line or field named") {
  auto slow = ParsePluginConfig("deadline_ms: 5000", "p.conf");
  REQUIRE_FALSE(slow.ok());
  CHECK(std::string(slow.status().message()) ==
        "p.conf: deadline_ms: must stay far below pdns's 2000 ms timeout (<= 1500)");
  auto typo = ParsePluginConfig("\nno_such_field: 1", "p.conf");
  REQUIRE_FALSE(typo.ok());
  CHECK(std::string(typo.status().message()).rfind("p.conf:2:", 0) == 0);
  CHECK(std::string(typo.status().message()).find("no_such_field") != std::string::npos);
}

TEST_CASE("plugin config is read from a file") {
  std::string dir = std::filesystem::temp_directory_path();
  std::string absent = dir + "/no-such-dir/plugin.conf";
  auto missing = LoadPluginConfig(absent);
  REQUIRE_FALSE(missing.ok());
  CHECK(std::string(missing.status().message()) == "cannot read config file " + absent);
  std::string path = dir + "/plugin_config_test.XXXXXX";
  int fd = mkstemp(path.data());
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "socket: \"/run/ppe.sock\"\nppe_target: \"10.0.0.1:50051\"\n";
  auto c = LoadPluginConfig(path);
  std::remove(path.c_str());
  REQUIRE(c.ok());
  CHECK(c->ppe_target() == "10.0.0.1:50051");
}

}  // namespace
}  // namespace ppe::plugin
