// libFuzzer target: one remote-backend request line through ParseRequest and
// Backend::Handle, on a backend that has zone data but no PPE (every address
// look-up that would go to the PPE gets the fallback). Whatever the line, the
// reply is one JSON object with a "result", on one line.
#include <cstddef>
#include <cstdint>
#include <string>

#include <rapidjson/document.h>

#include "backend-plugin/backend.h"
#include "ppe-service/common/log.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/mocks/test_zones.h"

namespace ppe::plugin {
namespace {

struct OfflineBackend {
  OfflineBackend()
      : client({.target = "127.0.0.1:1",
                .deadline = absl::Milliseconds(50),
                .breaker_failures = 1,
                .breaker_open = absl::Hours(24 * 365)}) {
    zones.Set(testing::TestZones());
  }
  ZoneCache zones;
  PpeClient client;
  Backend backend{zones, client};
};

OfflineBackend& Offline() {
  static OfflineBackend* b = new OfflineBackend();
  return *b;
}

}  // namespace
}  // namespace ppe::plugin

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  // One forwarded look-up fails and opens the breaker for good: from then on
  // no input waits on gRPC, and gRPC's one-time set-up is not charged to an input.
  ppe::plugin::Offline().backend.Handle(
      R"({"method":"lookup","parameters":{"qname":"video.cdn.example.test.","qtype":"A"}})");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view line(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ppe::plugin::Request> req = ppe::plugin::ParseRequest(line);
  if (!req.ok()) PPE_FUZZ_CHECK(req.status().code() == absl::StatusCode::kInvalidArgument);

  std::string reply = ppe::plugin::Offline().backend.Handle(line);
  PPE_FUZZ_CHECK(reply.find('\n') == std::string::npos);  // one line, always
  rapidjson::Document doc;
  doc.Parse(reply.data(), reply.size());
  PPE_FUZZ_CHECK(!doc.HasParseError());
  PPE_FUZZ_CHECK(doc.IsObject() && doc.HasMember("result"));
  if (!req.ok()) PPE_FUZZ_CHECK(doc["result"].IsFalse());
  return 0;
}
