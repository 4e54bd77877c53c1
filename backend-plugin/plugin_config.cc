#include "backend-plugin/plugin_config.h"

#include "ppe-service/common/status_macros.h"
#include "ppe-service/config/text_proto.h"

namespace ppe::plugin {

using ppe::config::v1::PluginConfig;

absl::StatusOr<PluginConfig> ParsePluginConfig(const std::string& text, const std::string& origin) {
  absl::StatusOr<PluginConfig> c = config::ParseTextProto<PluginConfig>(text, origin);
  if (!c.ok()) return c;
  if (c->ppe_target().empty()) c->set_ppe_target("127.0.0.1:50051");
  if (c->deadline_ms() == 0) c->set_deadline_ms(300);
  if (c->deadline_ms() > 1500) {
    return config::FieldError(origin, "deadline_ms",
                              "must stay far below pdns's 2000 ms timeout (<= 1500)");
  }
  if (c->zone_refresh_s() == 0) c->set_zone_refresh_s(30);
  if (c->breaker_failures() == 0) c->set_breaker_failures(5);
  if (c->breaker_open_ms() == 0) c->set_breaker_open_ms(1000);
  if (c->stale_serve_s() == 0) c->set_stale_serve_s(300);
  if (c->demand_report_ms() == 0) c->set_demand_report_ms(1000);
  return c;
}

absl::StatusOr<PluginConfig> LoadPluginConfig(const std::string& path) {
  PPE_ASSIGN_OR_RETURN(std::string text, config::ReadConfigFile(path));
  return ParsePluginConfig(text, path);
}

}  // namespace ppe::plugin
