// The data plane's stream and table, end to end in memory: registry changes
// -> AnswerStream deltas -> AnswerTable look-ups, resume and resync.
#include "ppe-service/resolver/answer_stream.h"

#include <random>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

#include "backend-plugin/answer_table.h"
#include "ppe-service/cpt/cpt_check.h"
#include "tests/fixtures/registry_fixture.h"

namespace ppe {
namespace {

using plugin::AnswerTable;
using registry::VmRecord;
using registry::VmState;
using resolver::AnswerStream;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

VmRecord Vm(const std::string& name, const std::string& cpt, const std::string& ip) {
  return VmRecord{.name = name, .cpt = cpt, .service = "video", .ip = ip, .created = kT0};
}

struct Fixture : testing::RegistryFixture {
  ManualClock clock{kT0};
  std::unique_ptr<AnswerStream> stream;

  explicit Fixture(AnswerStream::Options options = {.log_capacity = 100}) {
    options.epoch = 7;
    stream = std::make_unique<AnswerStream>(registry, std::vector<std::string>{"video", "db"},
                                            ppe::v1::ListZonesResponse(), clock, options);
    stream->Start();
  }
  void ReadyVm(const std::string& name, const std::string& cpt, const std::string& ip) {
    REQUIRE(registry.AddVm(Vm(name, cpt, ip)).ok());
    REQUIRE(registry.SetVmState(name, VmState::kReady).ok());
  }
  // Brings `table` up to date the way AnswerWatch does.
  void Sync(AnswerTable& table) {
    for (const auto& u : stream->Since(table.epoch(), table.version(), true)) {
      REQUIRE(table.Apply(*u).ok());
    }
    table.SetConnected(true, kT0);
  }
};

TEST_CASE("ready VMs reach the table; drain and release remove them", "[dataplane]") {
  Fixture f;
  REQUIRE(*f.registry.RegisterProfile("cpt1", {}, "admin", kT0));
  AnswerTable table;
  f.Sync(table);
  AnswerTable::Answer a;
  CHECK(table.mode(kT0) == AnswerTable::Mode::kFresh);
  CHECK_FALSE(table.FindProfile("video", "cpt1", a));  // no ready VM: Resolve's

  REQUIRE(f.registry.AddVm(Vm("vm1", "cpt1", "10.0.0.1")).ok());
  CHECK(f.stream->profile_entries() == 0);  // provisioning answers nothing
  REQUIRE(f.registry.SetVmState("vm1", VmState::kReady).ok());
  f.ReadyVm("vm2", "cpt1", "10.0.0.2");
  f.Sync(table);
  REQUIRE(table.FindProfile("video", "cpt1", a));
  CHECK(a.v4.size() == 2);
  CHECK(a.ttl == 30);
  CHECK(a.scope == 0);
  CHECK(a.cpt == "cpt1");
  CHECK_FALSE(table.FindProfile("db", "cpt1", a));

  REQUIRE(f.registry.SetVmState("vm1", VmState::kDraining).ok());
  f.Sync(table);
  REQUIRE(table.FindProfile("video", "cpt1", a));
  CHECK(a.v4.size() == 1);
  REQUIRE(f.registry.RemoveVm("vm2").ok());
  f.Sync(table);
  CHECK_FALSE(table.FindProfile("video", "cpt1", a));
  CHECK(table.profile_count() == 0);
}

TEST_CASE("invalidation removes the profile and its cohorts", "[dataplane]") {
  Fixture f;
  REQUIRE(*f.registry.RegisterProfile("cpt1", {}, "dns", kT0));
  f.ReadyVm("vm1", "cpt1", "10.0.0.1");
  uint32_t bucket = f.stream->CurrentBucket();
  f.stream->OnCohortAnswer("video", "198.51.100.0/24", bucket, "cpt1", 24);
  f.stream->OnCohortAnswer("video", "198.51.100.0/24", bucket, "cpt1", 24);  // no new delta
  f.stream->OnCohortAnswer("video", "10.9.0.0/24", bucket, "nope", 24);      // not answering
  CHECK(f.stream->cohort_entries() == 1);
  AnswerTable table;
  f.Sync(table);
  AnswerTable::Answer a;
  REQUIRE(table.FindCohort("video", "198.51.100.0/24", kT0, a));
  CHECK(a.scope == 24);
  CHECK(a.cpt == "cpt1");
  CHECK_FALSE(table.FindCohort("video", "198.51.101.0/24", kT0, a));
  // Another bucket's time: the entry does not answer.
  CHECK_FALSE(table.FindCohort("video", "198.51.100.0/24", kT0 + absl::Hours(12), a));

  REQUIRE(f.registry.InvalidateProfile("cpt1", kT0, kT0 + absl::Minutes(1)).ok());
  f.Sync(table);
  CHECK_FALSE(table.FindProfile("video", "cpt1", a));
  CHECK_FALSE(table.FindCohort("video", "198.51.100.0/24", kT0, a));
  CHECK(f.stream->cohort_entries() == 0);
}

TEST_CASE("cohorts of past buckets expire", "[dataplane]") {
  Fixture f;
  REQUIRE(*f.registry.RegisterProfile("cpt1", {}, "dns", kT0));
  f.ReadyVm("vm1", "cpt1", "10.0.0.1");
  uint32_t bucket = f.stream->CurrentBucket();
  f.stream->OnCohortAnswer("video", "198.51.100.0/24", bucket, "cpt1", 24);
  f.stream->ExpireCohorts(bucket);
  CHECK(f.stream->cohort_entries() == 1);
  f.stream->ExpireCohorts(bucket + 1);
  CHECK(f.stream->cohort_entries() == 0);
}

TEST_CASE("a reconnect resumes from its version; a gap older than the log gets a snapshot",
          "[dataplane]") {
  Fixture f(AnswerStream::Options{.log_capacity = 4, .snapshot_chunk = 3});
  REQUIRE(*f.registry.RegisterProfile("cpt0", {}, "admin", kT0));
  AnswerTable table;
  f.Sync(table);
  uint64_t v0 = table.version();

  // Two changes: the resuming client gets exactly those two deltas, shared.
  f.ReadyVm("vm1", "cpt0", "10.0.0.1");
  auto deltas = f.stream->Since(table.epoch(), v0);
  REQUIRE(deltas.size() == 1);  // AddVm(provisioning) published nothing
  CHECK_FALSE(deltas[0]->reset());
  CHECK(deltas[0]->version() == v0 + 1);
  CHECK(f.stream->Since(table.epoch(), v0)[0] == deltas[0]);  // the same message, not a copy
  f.Sync(table);
  AnswerTable::Answer a;
  CHECK(table.FindProfile("video", "cpt0", a));

  // Ten more profiles: more versions than the log keeps.
  for (int i = 1; i <= 10; ++i) {
    std::string cpt = "cpt" + std::to_string(i);
    REQUIRE(*f.registry.RegisterProfile(cpt, {}, "admin", kT0));
    f.ReadyVm("vm-" + cpt, cpt, "10.0.1." + std::to_string(i));
  }
  auto snapshot = f.stream->Since(table.epoch(), table.version());
  REQUIRE(snapshot.size() == 4);  // 11 entries in chunks of 3
  CHECK(snapshot.front()->reset());
  CHECK(snapshot.front()->partial());
  CHECK_FALSE(snapshot.back()->partial());
  // Mid-snapshot the old table still answers; then the new one does.
  for (size_t i = 0; i + 1 < snapshot.size(); ++i) REQUIRE(table.Apply(*snapshot[i]).ok());
  CHECK(table.FindProfile("video", "cpt0", a));
  CHECK_FALSE(table.FindProfile("video", "cpt10", a));
  REQUIRE(table.Apply(*snapshot.back()).ok());
  CHECK(table.profile_count() == 11);
  CHECK(table.FindProfile("video", "cpt10", a));
  CHECK(table.version() == f.stream->version());

  // Another epoch (a restarted or other replica): a snapshot, even at a known version.
  auto other = f.stream->Since(99, table.version());
  CHECK(other.front()->reset());
  // A delta that does not follow is refused (the watch then resyncs).
  ppe::v1::AnswerUpdate skip;
  skip.set_epoch(table.epoch());
  skip.set_version(table.version() + 2);
  CHECK(table.Apply(skip).code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("the table serves stale for stale_serve after the stream is lost, then not at all",
          "[dataplane]") {
  Fixture f;
  REQUIRE(*f.registry.RegisterProfile("cpt1", {}, "admin", kT0));
  f.ReadyVm("vm1", "cpt1", "10.0.0.1");
  AnswerTable table(AnswerTable::Options{.stale_serve = absl::Seconds(300)});
  CHECK(table.mode(kT0) == AnswerTable::Mode::kOff);  // nothing yet
  f.Sync(table);
  CHECK(table.mode(kT0) == AnswerTable::Mode::kFresh);
  table.SetConnected(false, kT0);
  CHECK(table.mode(kT0 + absl::Seconds(299)) == AnswerTable::Mode::kStale);
  CHECK(table.mode(kT0 + absl::Seconds(301)) == AnswerTable::Mode::kOff);
  table.SetConnected(true, kT0 + absl::Seconds(400));
  CHECK(table.mode(kT0 + absl::Seconds(400)) == AnswerTable::Mode::kFresh);
}

TEST_CASE("keyless check: CPT-shaped random labels almost never pass", "[dataplane]") {
  CHECK(cpt::HasValidCheck(
      absl::StrCat("a", "bcdefghijklmnopqrstuv", cpt::CptCheck("abcdefghijklmnopqrstuv"))));
  CHECK(cpt::HasValidCheck(absl::AsciiStrToUpper(
      absl::StrCat("abcdefghijklmnopqrstuv", cpt::CptCheck("abcdefghijklmnopqrstuv")))));
  CHECK_FALSE(cpt::HasValidCheck("not-a-cpt"));
  CHECK_FALSE(cpt::HasValidCheck(std::string(26, 'a')));
  std::mt19937 rng(1);
  int passed = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string label(26, 'a');
    for (char& c : label) c = "abcdefghijklmnopqrstuvwxyz234567"[rng() % 32];
    passed += cpt::HasValidCheck(label);
  }
  CHECK(passed < 20);  // 20 check bits: ~0.1 expected
}

}  // namespace
}  // namespace ppe
