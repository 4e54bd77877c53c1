#include "ppe-service/resolver/resolver_engine.h"

#include <thread>

#include <catch2/catch.hpp>

#include "absl/synchronization/notification.h"
#include "ppe-service/config/config_loader.h"
#include "ppe-service/dns/client_subnet.h"
#include "ppe-service/resolver/profile_admin.h"
#include "tests/fixtures/registry_fixture.h"
#include "tests/fixtures/test_config.h"
#include "tests/fixtures/wait_for.h"

namespace ppe::resolver {
namespace {

using ppe::v1::ResolveResponse;

// The test zone (tests/fixtures/test_config.h) with these sections.
constexpr const char* kSections = R"(
answers { ttl: 30 fallback_ttl: 5 allocation_wait_ms: 100 }
cohorts { min_requests: 3 buckets: 2 bucket_ms: 10000 probe_window_ms: 2000 }
regions { cidr: "198.51.100.0/24" region: "eu-west" }
)";

// The engine with everything real but the hypervisor. The VMs run on the wall
// clock; the engine's buckets and windows on `clock` (at 1,700,000,000 s).
struct Fixture : testing::VmFixture {
  Fixture()
      : VmFixture({.shape = {"cpu-heavy", 2, 2, 256, 256},
                   .workers = 4,
                   .start = absl::FromUnixSeconds(1700000000)}),
        config(testing::VideoZoneConfig(kSections)),
        codec(testing::TestCodec(26)),
        admin(ProfileAdmin::OptionsFromConfig(config), codec, registry, WallClock::Instance()) {
    REQUIRE(regions.Add("198.51.100.0/24", "eu-west").ok());
    engine = std::make_unique<ResolverEngine>(ResolverEngine::OptionsFromConfig(config), codec,
                                              regions, registry, vms, timers, clock);
  }

  ResolveResponse Resolve(const std::string& qname, const std::string& qtype = "A",
                          const std::string& real_remote = "198.51.100.0/24") {
    ppe::v1::ResolveRequest req;
    req.set_qname(qname);
    req.set_qtype(qtype);
    req.set_remote("127.0.0.1");
    req.set_real_remote(real_remote);
    ResolveResponse out;
    absl::Notification done;
    engine->Resolve(req, [&](ResolveResponse r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  ppe::config::v1::PpeConfig config;
  cpt::CptCodec codec;
  cpt::RegionTable regions;
  TimerQueue timers;
  ProfileAdmin admin;
  std::unique_ptr<ResolverEngine> engine;
};

std::string Tagged(Fixture& f, const std::string& region) {
  ppe::v1::IssueCptRequest req;
  req.set_service("video");
  req.mutable_attributes()->set_region(region);
  auto issued = f.admin.IssueCpt(req);
  REQUIRE(issued.ok());
  return issued->hostname() + ".";
}

TEST_CASE("a tagged name gets a VM, then the same VM from the pool; scope 0") {
  Fixture f;
  std::string name = Tagged(f, "eu-west");
  ResolveResponse first = f.Resolve(name);
  CHECK(first.source() == ResolveResponse::SOURCE_ALLOCATED);
  REQUIRE(first.records_size() == 1);
  CHECK(first.records(0).content() == "10.9.0.1");
  CHECK(first.records(0).ttl() == 30);
  CHECK(first.records(0).scope_mask() == 0);
  CHECK(first.records(0).qname() == name);
  ResolveResponse second = f.Resolve(name);
  CHECK(second.source() == ResolveResponse::SOURCE_POOL);
  CHECK(second.records(0).content() == "10.9.0.1");
  CHECK(f.fake.creates == 1);
}

TEST_CASE("untagged names: the shared pool, scoped to the region's CIDR; no VM") {
  Fixture f;
  ResolveResponse a = f.Resolve("video.cdn.example.test.", "A", "198.51.100.0/24");
  ResolveResponse b = f.Resolve("video.cdn.example.test.", "A", "203.0.113.0/25");
  ResolveResponse c = f.Resolve("video.cdn.example.test.", "A", "198.51.100.7/32");
  REQUIRE(a.records_size() == 1);
  REQUIRE(b.records_size() == 1);
  CHECK(a.source() == ResolveResponse::SOURCE_FALLBACK);  // no spares configured
  CHECK(a.records(0).content() == "192.0.2.10");
  CHECK(a.records(0).ttl() == 5);
  CHECK(a.records(0).scope_mask() == 24);  // the region's CIDR
  CHECK(b.records(0).scope_mask() == 24);  // no rule: /24, within the source /25
  CHECK(c.records(0).scope_mask() == 24);  // a /32 client of a /24 region: /24
  CHECK(f.Resolve("video.cdn.example.test.", "A", "0.0.0.0/0").records(0).scope_mask() == 0);
  CHECK(f.Resolve("video.cdn.example.test.", "A", "198.0.0.0/8").records(0).scope_mask() == 8);
  CHECK(f.registry.ListProfiles().empty());
  CHECK(f.fake.creates == 0);
}

TEST_CASE("derived attributes: ECS source /0 uses the resolver's address, scope 0") {
  Fixture f;
  ppe::v1::ResolveRequest req;
  req.set_remote("198.51.100.53");
  req.set_real_remote("0.0.0.0/0");
  ResolverEngine::Derived d = f.engine->DeriveAttributes(req, "video");
  CHECK(d.attributes.region == "eu-west");
  CHECK(d.scope == 0);
  req.set_real_remote("198.51.100.53/32");  // no ECS: pdns passes remote/32
  CHECK(f.engine->DeriveAttributes(req, "video").scope == 24);
  req.set_remote("2001:db8::53");
  req.set_real_remote("2001:db8:1:2::/64");
  CHECK(f.engine->DeriveAttributes(req, "video").scope == 56);
  req.set_real_remote("2001:db8::1/128");
  CHECK(f.engine->DeriveAttributes(req, "video").scope == 56);
  req.set_real_remote("2001:db8::/48");
  CHECK(f.engine->DeriveAttributes(req, "video").scope == 48);
}

TEST_CASE("sustained untagged demand registers the cohort; one query does not") {
  Fixture f;
  auto untagged = [&] { return f.Resolve("video.cdn.example.test.", "A", "198.51.100.0/24"); };
  for (int i = 0; i < 3; ++i) untagged();  // bucket 1: 3 queries
  f.clock.Advance(absl::Seconds(10));
  untagged();  // settles bucket 1's queries (their probe window has passed)
  CHECK(f.registry.ListProfiles().empty());
  untagged();
  untagged();
  f.clock.Advance(absl::Seconds(3));
  untagged();  // bucket 2 reaches 3 counted queries: due
  REQUIRE(testing::WaitFor([&] { return f.vms.inflight() == 0; }));
  auto profiles = f.registry.ListProfiles();
  REQUIRE(profiles.size() == 1);
  CHECK(profiles[0].attributes.region == "eu-west");
  CHECK(profiles[0].origin == "dns");
  CHECK(f.fake.creates == 1);
  CHECK(f.engine->stats().cohorts_registered == 1);
  ResolveResponse r = untagged();
  CHECK(r.source() == ResolveResponse::SOURCE_POOL);
  CHECK(r.records(0).content() == "10.9.0.1");
  CHECK(r.records(0).scope_mask() == 24);
}

TEST_CASE("QNAME-minimisation probes before tagged names are not demand") {
  Fixture f;
  std::string tagged = Tagged(f, "eu-west");
  for (int round = 0; round < 4; ++round) {  // four buckets of minimised look-ups
    for (int i = 0; i < 5; ++i) {
      f.Resolve("video.cdn.example.test.", "A", "198.51.100.0/24");  // the probe
      f.clock.Advance(absl::Milliseconds(20));
      f.Resolve(tagged, "A", "198.51.100.0/24");
    }
    f.clock.Advance(absl::Seconds(10));
  }
  f.Resolve("video.cdn.example.test.", "A", "203.0.113.0/24");  // settles the rest
  REQUIRE(testing::WaitFor([&] { return f.vms.inflight() == 0; }));
  CHECK(f.registry.ListProfiles().size() == 1);  // the tagged profile only
  CHECK(f.fake.creates == 1);
  CHECK(f.engine->cohort_demand().stats().probes == 20);
  CHECK(f.engine->cohort_demand().stats().counted == 0);
}

TEST_CASE("a forged CPT is answered as untagged and never registered") {
  Fixture f;
  std::string forged = std::string(26, 'a') + ".video.cdn.example.test.";
  ResolveResponse r = f.Resolve(forged);
  REQUIRE(r.records_size() == 1);
  CHECK(r.records(0).scope_mask() == 24);
  CHECK(r.source() == ResolveResponse::SOURCE_FALLBACK);
  CHECK(f.registry.ListProfiles().empty());
  CHECK_FALSE(f.registry.IsActive(std::string(26, 'a')));
  CHECK(f.fake.creates == 0);
}

TEST_CASE("apex, other names and other types") {
  Fixture f;
  ResolveResponse soa = f.Resolve("cdn.example.test.", "SOA");
  REQUIRE(soa.records_size() == 1);
  CHECK(soa.records(0).qtype() == "SOA");
  CHECK(f.Resolve("cdn.example.test.", "ANY").records_size() == 2);  // SOA + NS
  CHECK(f.Resolve("mail.cdn.example.test.").records_size() == 0);
  CHECK(f.Resolve("www.example.org.").records_size() == 0);
  CHECK(f.Resolve("video.cdn.example.test.", "TXT").records_size() == 0);
  CHECK(f.Resolve("video.cdn.example.test.", "AAAA").records_size() == 0);
  CHECK(f.fake.creates == 0);  // neither TXT nor AAAA (VMs are IPv4) allocates
}

TEST_CASE("a slow hypervisor: fallback within the wait, the VM still arrives") {
  Fixture f;
  f.fake.create_delay = absl::Milliseconds(400);
  std::string name = Tagged(f, "eu-west");
  absl::Time start = absl::Now();
  ResolveResponse r = f.Resolve(name);
  absl::Duration took = absl::Now() - start;
  CHECK(r.source() == ResolveResponse::SOURCE_FALLBACK);
  REQUIRE(r.records_size() == 1);
  CHECK(r.records(0).content() == "192.0.2.10");
  CHECK(r.records(0).ttl() == 5);
  CHECK(r.records(0).scope_mask() == 24);  // transient: pdns must not cache it
  CHECK(took < absl::Milliseconds(390));   // answered at the wait (100 ms), not at the create
  REQUIRE(testing::WaitFor([&] { return f.vms.inflight() == 0; }));
  CHECK(f.Resolve(name).source() == ResolveResponse::SOURCE_POOL);
}

TEST_CASE("a failing hypervisor gives the fallback and leaks no address") {
  Fixture f;
  f.fake.fail = true;
  ResolveResponse r = f.Resolve(Tagged(f, "eu-west"));
  CHECK(r.source() == ResolveResponse::SOURCE_FALLBACK);
  CHECK(f.pool->in_use() == 0);
}

TEST_CASE("concurrent first queries for one new profile allocate exactly once") {
  Fixture f;
  f.fake.create_delay = absl::Milliseconds(30);
  std::string name = Tagged(f, "eu-west");
  std::vector<std::thread> threads;
  std::atomic<int> answered{0};
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&] {
      if (f.Resolve(name).records_size() == 1) answered.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(answered == 32);
  CHECK(f.fake.creates == 1);
  CHECK(f.registry.ListVms().size() == 1);
}

TEST_CASE("client scope from real-remote and remote") {
  CHECK(dns::ClientScope("198.51.100.0/24", "127.0.0.1") == 24);
  CHECK(dns::ClientScope("2001:db8::/56", "::1") == 56);
  CHECK(dns::ClientScope("0.0.0.0/0", "10.0.0.1") == 0);  // ECS source /0: no tailoring
  CHECK(dns::ClientScope("", "2001:db8::1") == 128);
  CHECK(dns::ClientScope("10.0.0.1", "10.0.0.1") == 32);
  CHECK(dns::ClientScope("10.0.0.0/99", "10.0.0.1") == 32);
}

TEST_CASE("IssueCpt validates its input") {
  Fixture f;
  ppe::v1::IssueCptRequest req;
  req.set_service("nope");
  req.mutable_attributes()->set_region("eu-west");
  CHECK(f.admin.IssueCpt(req).status().code() == absl::StatusCode::kInvalidArgument);
  req.set_service("VIDEO");
  req.mutable_attributes()->clear_region();
  CHECK(f.admin.IssueCpt(req).status().code() == absl::StatusCode::kInvalidArgument);
  req.mutable_attributes()->set_region("eu-west");
  auto a = f.admin.IssueCpt(req);
  REQUIRE(a.ok());
  CHECK(a->created());
  CHECK(a->hostname() == a->cpt() + ".video.cdn.example.test");
  CHECK_FALSE(f.admin.IssueCpt(req)->created());
}

}  // namespace
}  // namespace ppe::resolver
