// libFuzzer target: the Admin request handlers' input checks and ProfileAdmin
// on arbitrary requests (the first byte picks IssueCpt, SetProfileLimits or
// ReportDemand; the rest is the request's protobuf encoding). Accepted input
// is within the documented bounds; refused input gets INVALID_ARGUMENT (or
// NOT_FOUND for an unknown profile), and every error message is bounded.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ppe-service/common/clock.h"
#include "ppe-service/common/log.h"
#include "ppe-service/config/config_loader.h"
#include "ppe-service/cpt/cpt_codec.h"
#include "ppe-service/cpt/key_ring.h"
#include "ppe-service/registry/registry.h"
#include "ppe-service/resolver/admin_input.h"
#include "ppe-service/resolver/profile_admin.h"
#include "ppe-service/store/memory_registry_store.h"
#include "tests/fixtures/test_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace ppe;  // NOLINT

struct World {
  World()
      : config(ppe::testing::VideoZoneConfig()),
        codec(cpt::KeyRing::ForTesting(std::string(32, 'k')), 26),
        registry(store),
        admin(resolver::ProfileAdmin::OptionsFromConfig(config), codec, registry,
              WallClock::Instance()) {
    if (!registry.Load().ok()) std::abort();
  }
  ppe::config::v1::PpeConfig config;
  cpt::CptCodec codec;
  store::MemoryRegistryStore store;
  registry::Registry registry;
  resolver::ProfileAdmin admin;
};

void CheckBounded(const absl::Status& s) {
  PPE_FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument ||
                 s.code() == absl::StatusCode::kNotFound);
  PPE_FUZZ_CHECK(s.message().size() < 400);
}

bool Printable(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = new World();
  if (size == 0) return 0;
  const char* body = reinterpret_cast<const char*>(data + 1);
  int body_size = static_cast<int>(size - 1);
  std::string safe = ppe::LogSafe(absl::string_view(body, static_cast<size_t>(body_size)));
  PPE_FUZZ_CHECK(safe.size() <= 96 + 32 && Printable(safe));
  switch (data[0] % 3) {
    case 0: {
      ppe::v1::IssueCptRequest req;
      if (!req.ParseFromArray(body, body_size)) return 0;
      absl::StatusOr<ppe::v1::IssueCptResponse> r = world->admin.IssueCpt(req);
      if (!r.ok()) {
        CheckBounded(r.status());
        PPE_FUZZ_CHECK(Printable(std::string(r.status().message())));
        return 0;
      }
      const auto& a = req.attributes();
      for (const std::string* v : {&a.region(), &a.device_class(), &a.service_tier(),
                                   &a.time_bucket(), &a.request_pattern()}) {
        PPE_FUZZ_CHECK(v->size() <= resolver::kMaxAttributeBytes && Printable(*v));
      }
      PPE_FUZZ_CHECK(world->registry.IsActive(r->cpt()));
      break;
    }
    case 1: {
      ppe::v1::SetProfileLimitsRequest req;
      if (!req.ParseFromArray(body, body_size)) return 0;
      absl::Status s = resolver::CheckLimitsRequest(world->admin.services(), req);
      if (!s.ok()) {
        CheckBounded(s);
        return 0;
      }
      PPE_FUZZ_CHECK(req.service().size() <= 253);
      PPE_FUZZ_CHECK(req.min_vms() >= 0 && req.max_vms() <= resolver::kMaxVmsLimit);
      break;
    }
    default: {
      ppe::v1::ReportDemandRequest req;
      if (!req.ParseFromArray(body, body_size)) return 0;
      absl::Status s = resolver::CheckReport(world->admin.services(), req);
      if (!s.ok()) {
        CheckBounded(s);
        return 0;
      }
      for (const auto& e : req.entries()) {
        PPE_FUZZ_CHECK(e.requests() > 0 && e.requests() <= resolver::kMaxReportedRequests);
      }
      break;
    }
  }
  return 0;
}
