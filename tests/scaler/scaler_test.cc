#include "ppe-service/scaler/scaler.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "ppe-service/store/sqlite_registry_store.h"
#include "ppe/registry/v1/records.pb.h"
#include "tests/fixtures/registry_fixture.h"
#include "tests/fixtures/wait_for.h"

namespace ppe::scaler {
namespace {

constexpr double kPerVm = 50;  // requests one VM serves per bucket

// The scaler with everything real but the hypervisor (instant) and the clock.
// With `durable`, the registry and the scaler keep their state in it.
struct World : testing::VmFixture {
  explicit World(Scaler::Mode mode, int max_vms = 20, int budget = 1000,
                 store::RegistryStore* durable = nullptr,
                 absl::Time start = absl::FromUnixSeconds(1'000'000), std::vector<int> periods = {},
                 bool pool_sparse = true, bool adaptive_spares = false, int checkpoint_every = 1)
      : World({.pool_cidr = "10.9.0.0/16",
               .limits = {.max_vms_per_profile = static_cast<size_t>(max_vms)},
               .manual_clock = true,
               .start = start,
               .durable = durable},
              {.mode = mode,
               .bucket = absl::Seconds(1),
               .lead_buffer = absl::Seconds(3),
               .refit_every = 5,
               .cooldown = 3,
               .periods = std::move(periods),
               .checkpoint_every = checkpoint_every,
               .keep_warm = 2,
               .max_vms = max_vms,
               .budget = budget,
               .drain = absl::Seconds(10),
               .requests_per_vm = {{"video", kPerVm}},
               .adaptive_spares = adaptive_spares,
               .pool_sparse = pool_sparse},
              durable) {}
  // Any manager and scaler set-up; the manager runs on the manual clock too.
  World(const VmFixture::Options& vm_options, const Scaler::Options& options,
        store::RegistryStore* durable = nullptr)
      : VmFixture(OnManualClock(vm_options)),
        scaler(registry, vms, demand, workers, clock, options, durable) {}
  static VmFixture::Options OnManualClock(VmFixture::Options options) {
    options.manual_clock = true;
    return options;
  }

  void Register(const std::string& cpt, const std::string& tier = "standard") {
    REQUIRE(registry.RegisterProfile(cpt, {.service_tier = tier}, "admin", clock.Now()).ok());
  }
  int Ready(const std::string& cpt) {
    return static_cast<int>(registry.ReadyAddresses(cpt, "video", clock.Now()).size());
  }
  // One bucket of `requests`, then the scaler's tick; waits for its scale-ups.
  void Bucket(const std::string& cpt, int requests) {
    for (int i = 0; i < requests; ++i) demand.Record(cpt, "video");
    clock.Advance(absl::Seconds(1));
    scaler.Tick();
    REQUIRE(ScaleUpsDone());
  }
  // Every scale-up the scaler ordered is done (its tasks run on the workers),
  // and none of the VMs is still starting.
  bool ScaleUpsDone() {
    return testing::WaitFor([&] {
      for (const auto& profile : registry.ListProfiles()) {
        auto v = scaler.Describe(profile.cpt, "video");
        if (v.ok() && v->pending > 0) return false;
      }
      for (const registry::VmRecord& vm : registry.ListVms()) {
        if (vm.state == registry::VmState::kProvisioning ||
            vm.state == registry::VmState::kBooting) {
          return false;
        }
      }
      return true;
    });
  }

  DemandTracker demand;
  Scaler scaler;
};

// Buckets in which the ready VMs could not serve that bucket's demand.
int ShortBuckets(Scaler::Mode mode) {
  World w(mode);
  w.Register("cpt");
  int short_buckets = 0;
  for (int t = 0; t < 40; ++t) {
    int demand = 20 + 12 * t;  // a steady ramp: 20 .. 488 requests per bucket
    int needed = static_cast<int>(std::ceil(demand / kPerVm));
    if (t >= 8 && w.Ready("cpt") < needed) ++short_buckets;  // after a short warm-up
    w.Bucket("cpt", demand);
  }
  return short_buckets;
}

TEST_CASE("predictive scaling has VMs ready before a ramp needs them; reactive lags") {
  int predictive = ShortBuckets(Scaler::Mode::kPredictive);
  int reactive = ShortBuckets(Scaler::Mode::kReactive);
  INFO("short buckets: predictive " << predictive << ", reactive " << reactive);
  CHECK(predictive == 0);
  CHECK(reactive >= 5);  // short whenever the ramp crosses a VM boundary: 1 bucket in 4
}

// A "day" of 24 buckets with a peak at phases 16-19 (`scale` x 450 requests a
// bucket then, x 50 the rest of the day).
int DailyDemand(int64_t bucket, double scale) {
  const int64_t phase = bucket % 24;
  return static_cast<int>(scale * (phase >= 16 && phase <= 19 ? 450 : 50));
}

// Buckets of its first day in which a new profile, first seen at night, had
// fewer ready VMs than its demand needed; the service's other profile has
// two days and a quarter of history.
int NewProfileShortBuckets(bool pool_sparse) {
  World w(Scaler::Mode::kPredictive, 60, 1000, nullptr, absl::FromUnixSeconds(24 * 50'000), {24},
          pool_sparse);
  w.Register("big");
  w.Register("small");
  auto bucket = [&] { return absl::ToUnixSeconds(w.clock.Now()); };
  for (int t = 0; t < 2 * 24 + 6; ++t) w.Bucket("big", DailyDemand(bucket(), 1.0));
  int short_buckets = 0;
  for (int t = 0; t < 24; ++t) {
    const int64_t now = bucket();
    const int small = DailyDemand(now, 0.3);  // 15 a bucket, 135 at the peak
    if (t >= 2 && w.Ready("small") < static_cast<int>(std::ceil(small / kPerVm))) ++short_buckets;
    for (int i = 0; i < small; ++i) w.demand.Record("small", "video");
    w.Bucket("big", DailyDemand(now, 1.0));
    for (int i = 0; i < 400; ++i) {  // the new profile's scale-ups too
      auto v = w.scaler.Describe("small", "video");
      if (!v.ok() || (v->current >= v->desired && v->pending == 0)) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  return short_buckets;
}

TEST_CASE("pooling: a new profile borrows its service's daily shape and is ready for the peak") {
  const int pooled = NewProfileShortBuckets(true);
  const int alone = NewProfileShortBuckets(false);
  INFO("short buckets of the new profile: pooled " << pooled << ", without pooling " << alone);
  CHECK(pooled == 0);
  // Its own model has no seasonality before two days of history: the first
  // bucket of the peak finds too few VMs (the fake hypervisor boots at once,
  // so the next ones are covered).
  CHECK(alone >= 1);
}

TEST_CASE("scale down keeps the highest want of the cooldown window, then drains to it at once") {
  World w(Scaler::Mode::kReactive);
  w.Register("cpt");
  w.Bucket("cpt", 200);  // 4 VMs
  REQUIRE(w.Ready("cpt") == 4);
  // A dip shorter than the window (3 buckets) drains nothing, so nothing
  // has to be booted again when the demand comes back.
  w.Bucket("cpt", 10);
  w.Bucket("cpt", 10);
  w.Bucket("cpt", 200);
  CHECK(w.Ready("cpt") == 4);
  CHECK(w.scaler.stats().scale_downs == 0);
  CHECK(w.scaler.stats().scale_ups == 4);
  w.Bucket("cpt", 120);  // wants 3: window 4, 4, 3
  w.Bucket("cpt", 10);   // wants 1 (one kept warm): window 4, 3, 1
  CHECK(w.Ready("cpt") == 4);
  w.Bucket("cpt", 10);  // window 3, 1, 1: one drains
  CHECK(w.Ready("cpt") == 3);
  w.Bucket("cpt", 10);  // window 1, 1, 1: the two above it drain in the same bucket
  CHECK(w.Ready("cpt") == 1);
  for (int i = 0; i < 10; ++i) w.Bucket("cpt", 10);
  CHECK(w.Ready("cpt") == 1);  // recently seen: one stays warm
  CHECK(w.scaler.stats().scale_downs == 3);
  CHECK(w.scaler.stats().scale_ups == 4);
  auto draining = w.registry.ListVms("cpt");
  CHECK(std::count_if(draining.begin(), draining.end(), [](const registry::VmRecord& v) {
          return v.state == registry::VmState::kDraining;
        }) == 3);
}

TEST_CASE("VMs still starting are counted once, not again as pending scale-ups") {
  World w(Scaler::Mode::kReactive);
  w.Register("cpt");
  // Each create takes 400 ms: the next bucket's tick comes while the first
  // scale-up's VMs are provisioning and their tasks still pending.
  w.fake.create_delay = absl::Milliseconds(400);
  for (int i = 0; i < 100; ++i) w.demand.Record("cpt", "video");
  w.clock.Advance(absl::Seconds(1));
  w.scaler.Tick();  // 2 VMs wanted
  REQUIRE(testing::WaitFor([&] { return w.registry.ListVms("cpt").size() == 2; }));
  for (int i = 0; i < 200; ++i) w.demand.Record("cpt", "video");
  w.clock.Advance(absl::Seconds(1));
  w.scaler.Tick();  // 4 wanted: 2 more, though 2 start and 2 are pending
  REQUIRE(w.ScaleUpsDone());
  CHECK(w.Ready("cpt") == 4);
  CHECK(w.scaler.stats().scale_ups == 4);
}

TEST_CASE("limits: per-profile max and min, and the budget goes to premium first") {
  World w(Scaler::Mode::kReactive, /*max_vms=*/3, /*budget=*/4);
  CHECK(w.scaler.stats().budget == 4);  // ppectl status shows it before the first tick
  w.Register("premium", "premium");
  w.Register("standard", "standard");
  for (int i = 0; i < 200; ++i) {
    w.demand.Record("premium", "video");
    w.demand.Record("standard", "video");
  }
  w.clock.Advance(absl::Seconds(1));
  w.scaler.Tick();
  REQUIRE(testing::WaitFor([&] { return w.Ready("premium") + w.Ready("standard") >= 4; }));
  REQUIRE(w.ScaleUpsDone());        // nothing more arrives
  CHECK(w.Ready("premium") == 3);   // wanted 4, capped at the profile max
  CHECK(w.Ready("standard") == 1);  // what is left of the budget of 4

  REQUIRE(w.scaler.SetLimits("standard", "video", 2, 2).ok());
  w.scaler.SetLimits("premium", "video", 1, 1).IgnoreError();
  auto v = w.scaler.ScaleNow("standard", "video");
  REQUIRE(v.ok());
  CHECK(v->min_vms == 2);
  CHECK_FALSE(w.scaler.SetLimits("nope", "video", 1, 1).ok());
  CHECK_FALSE(w.scaler.SetLimits("standard", "video", 3, 2).ok());
}

TEST_CASE("at the profile's cap, more demand grows the VMs live (scale out)") {
  World w({.shape = {"cpu-heavy", 2, 8, 512, 2048}, .limits = {.max_vms_per_profile = 2}},
          {.mode = Scaler::Mode::kReactive,
           .bucket = absl::Seconds(1),
           .max_vms = 2,
           .requests_per_vm = {{"video", kPerVm}}});
  w.Register("cpt");
  auto bucket = [&] {  // 10 VMs' worth of demand
    w.demand.Record("cpt", "video", 500);
    w.clock.Advance(absl::Seconds(1));
    w.scaler.Tick();
  };
  bucket();  // capped at 2: two are created
  REQUIRE(testing::WaitFor([&] { return w.Ready("cpt") == 2; }));
  bucket();  // both ready and still short: they grow
  REQUIRE(testing::WaitFor([&] { return w.scaler.stats().scale_outs >= 2; }));
  auto pool_vms = w.registry.ListVms("cpt");
  REQUIRE(pool_vms.size() == 2);
  CHECK(w.scaler.stats().scale_outs == 2);
  for (const auto& vm : pool_vms) {
    CHECK(w.fake.size(vm.name) == std::make_pair(8u, 2048u));
  }
}

TEST_CASE("PPE's own host capacity accounting bounds allocations") {
  testing::VmFixture f(
      {.shape = {"cpu-heavy", 4, 4, 1024, 1024},
       .limits = {.max_vms_per_profile = 10, .host_vcpus = 10, .host_memory_mib = 100000}});
  REQUIRE(f.registry.RegisterProfile("cpt", {}, "admin", absl::Now()).ok());
  CHECK(f.vms.AddVm("cpt", "video").ok());                          // 4 vCPUs
  CHECK(f.vms.AddVm("cpt", "video").ok());                          // 8
  absl::StatusOr<std::string> third = f.vms.AddVm("cpt", "video");  // 12 > 10
  CHECK(third.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(f.registry.VmCount() == 2);
  CHECK(f.pool->in_use() == 2);  // nothing leaked by the refusal
}

TEST_CASE("the view shows history, model, forecast and interval") {
  World w(Scaler::Mode::kPredictive);
  w.Register("cpt");
  for (int t = 0; t < 20; ++t) w.Bucket("cpt", 100 + (t % 2) * 10);
  auto v = w.scaler.Describe("cpt", "video");
  REQUIRE(v.ok());
  CHECK(v->history.size() == 20);
  CHECK(v->model != "none yet");
  REQUIRE(v->mean.size() == static_cast<size_t>(v->lead_buckets));
  for (size_t i = 0; i < v->mean.size(); ++i) {
    CHECK(v->lower[i] <= v->mean[i]);
    CHECK(v->mean[i] <= v->upper[i]);
  }
  CHECK(v->errors_counted > 0);
  CHECK(v->mean_abs_error < 20);
  CHECK_FALSE(w.scaler.Describe("other", "video").ok());
}

TEST_CASE("the forecast covers the lead time rounded up to whole buckets") {
  // 60 s buckets; the lead is the measured boot time (about 1 s with the
  // instant fake hypervisor) plus the buffer. Integer division once rounded
  // a 58 s lead down to no bucket at all.
  for (auto [buffer, want] : {std::pair{57, 2}, std::pair{61, 3}}) {
    World w({.pool_cidr = "10.9.0.0/16", .manual_clock = true},
            {.mode = Scaler::Mode::kPredictive,
             .bucket = absl::Seconds(60),
             .lead_buffer = absl::Seconds(buffer),
             .requests_per_vm = {{"video", kPerVm}}});
    w.Register("cpt");
    w.demand.Record("cpt", "video");
    w.clock.Advance(absl::Seconds(60));
    w.scaler.Tick();
    auto v = w.scaler.Describe("cpt", "video");
    REQUIRE(v.ok());
    CHECK(v->lead_buckets == want);
  }
}

// Keys the scaler keeps under `prefix` in the store.
size_t Keys(store::RegistryStore& db, const std::string& prefix) {
  absl::StatusOr<store::RangeResult> r = db.List(prefix);
  REQUIRE(r.ok());
  return r->kvs.size();
}

TEST_CASE(
    "limits and demand history survive a restart; a crash loses the buckets since the "
    "last checkpoint") {
  char dir[] = "/tmp/ppe-scaler-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/registry.db";
  // Buckets are seconds from 1,000,000 s; checkpoints every 10 buckets here
  // (the default is every bucket), at the end of buckets 1,000,009, 1,000,019, ...
  std::vector<double> sent;
  absl::Time stopped_at;
  const bool clean = GENERATE(true, false);
  {
    auto db = store::SqliteRegistryStore::Open(path);
    REQUIRE(db.ok());
    World w(Scaler::Mode::kPredictive, 20, 1000, db->get(), absl::FromUnixSeconds(1'000'000), {},
            true, false, /*checkpoint_every=*/10);
    REQUIRE(w.scaler.Load().ok());
    w.Register("cpt");
    w.Register("gone");
    REQUIRE(w.scaler.SetLimits("cpt", "video", 2, 6).ok());
    for (int t = 0; t < 25; ++t) {
      sent.push_back(100 + 7 * (t % 3));
      w.demand.Record("gone", "video", 5);
      w.Bucket("cpt", static_cast<int>(sent.back()));
    }
    REQUIRE(w.scaler.Describe("cpt", "video")->history == sent);
    if (clean) w.scaler.Stop();  // else: as kill -9, the destructor writes nothing
    stopped_at = w.clock.Now();
  }
  auto db = store::SqliteRegistryStore::Open(path);
  REQUIRE(db.ok());
  World w(Scaler::Mode::kPredictive, 20, 1000, db->get(), stopped_at + absl::Seconds(30));
  // A profile that ended while the PPE was down: its keys go at start-up.
  REQUIRE(w.registry.InvalidateProfile("gone", w.clock.Now(), w.clock.Now()).ok());
  REQUIRE(Keys(**db, "/ppe/scaling/demand/gone/") > 0);
  REQUIRE(w.scaler.Load().ok());
  CHECK(Keys(**db, "/ppe/scaling/demand/gone/") == 0);
  CHECK_FALSE(w.scaler.Describe("gone", "video").ok());

  auto v = w.scaler.Describe("cpt", "video");
  REQUIRE(v.ok());
  CHECK(v->min_vms == 2);
  CHECK(v->max_vms == 6);
  std::vector<double> kept(sent.begin(), sent.begin() + (clean ? 25 : 20));
  CHECK(v->history == kept);
  // The next bucket continues the history; the downtime reads as zeros.
  w.Bucket("cpt", 50);
  v = w.scaler.Describe("cpt", "video");
  REQUIRE(v.ok());
  REQUIRE(v->history.size() == 56);
  CHECK(std::vector<double>(v->history.begin(), v->history.begin() + kept.size()) == kept);
  CHECK(v->history.back() == 50);
  CHECK(v->model != "none yet");  // fitted on the restored history at once
  CHECK(v->desired >= 2);         // the restored minimum holds

  // Invalidated while running: the next tick drops its series and keys.
  REQUIRE(w.registry.InvalidateProfile("cpt", w.clock.Now(), w.clock.Now()).ok());
  w.clock.Advance(absl::Seconds(1));
  w.scaler.Tick();
  CHECK(Keys(**db, "/ppe/scaling/demand/cpt/") == 0);
  CHECK(Keys(**db, "/ppe/scaling/limits/cpt/") == 0);
  CHECK(w.scaler.stats().checkpoint_errors == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a checkpoint of more series than one transaction takes is split, and all of it loads") {
  store::MemoryRegistryStore db;
  constexpr int kSeries = 4'100;  // a transaction takes 4,000 ops, one per series
  {
    // Budget 0: no VMs, only the counts matter here.
    World w(Scaler::Mode::kReactive, 20, 0, &db);
    REQUIRE(w.scaler.Load().ok());
    for (int i = 0; i < kSeries; ++i) w.Register("cpt" + std::to_string(i));
    for (int t = 0; t < 10; ++t) {  // every bucket ends on a checkpoint
      for (int i = 0; i < kSeries; ++i)
        w.demand.Record("cpt" + std::to_string(i), "video", i + t + 1);
      w.clock.Advance(absl::Seconds(1));
      w.scaler.Tick();
    }
    CHECK(w.scaler.stats().checkpoint_errors == 0);
  }  // no Stop: only the checkpoint is in the store
  absl::StatusOr<store::RangeResult> r = db.List("/ppe/scaling/demand/");
  REQUIRE(r.ok());
  REQUIRE(r->kvs.size() == static_cast<size_t>(kSeries));
  std::set<int64_t> revisions;
  for (const store::KeyValue& kv : r->kvs) revisions.insert(kv.mod_revision);
  CHECK(revisions.size() == 2);  // two transactions

  World w(Scaler::Mode::kReactive, 20, 0, &db, absl::FromUnixSeconds(1'000'010));
  REQUIRE(w.scaler.Load().ok());
  for (int i : {0, 1'999, 2'000, kSeries - 1}) {
    auto v = w.scaler.Describe("cpt" + std::to_string(i), "video");
    REQUIRE(v.ok());
    std::vector<double> expected;
    for (int t = 0; t < 10; ++t) expected.push_back(i + t + 1);
    CHECK(v->history == expected);
  }
}

TEST_CASE("start-up deletes demand chunks it cannot use: expired, other bucket length, corrupt") {
  store::MemoryRegistryStore db;
  World w(Scaler::Mode::kPredictive, 20, 1000, &db);
  w.Register("cpt");
  const int64_t now = 1'000'000;  // the World's clock, in 1 s buckets
  auto chunk = [](int64_t bucket_ms, int64_t first, std::vector<float> counts) {
    ppe::registry::v1::DemandChunk c;
    c.set_bucket_ms(bucket_ms);
    c.set_first_bucket(first);
    for (float x : counts) c.add_counts(x);
    return c.SerializeAsString();
  };
  const std::string prefix = "/ppe/scaling/demand/cpt/video/";
  REQUIRE(db.Put(prefix + "0000000000000979880", chunk(1000, now - 20'120, {3, 4})).ok());
  REQUIRE(db.Put(prefix + "0000000000000999840", chunk(60'000, now - 160, {3})).ok());
  REQUIRE(db.Put(prefix + "0000000000000999900", "not a chunk").ok());
  REQUIRE(db.Put(prefix + "0000000000000999960", chunk(1000, now - 40, {0, 8, 9})).ok());
  REQUIRE(db.Put("/ppe/scaling/demand/nobody/video/0000000000000999960", chunk(1000, 1, {1})).ok());
  REQUIRE(w.scaler.Load().ok());
  CHECK(Keys(db, "/ppe/scaling/demand/") == 1);
  auto v = w.scaler.Describe("cpt", "video");
  REQUIRE(v.ok());
  CHECK(v->history == std::vector<double>{0, 8, 9});
}

TEST_CASE("warm spares answer a first-time profile at once and are refilled") {
  testing::VmFixture f({.warm_spares = 2, .workers = 4});
  f.fake.create_delay = absl::Milliseconds(300);
  vm::VmManager& vms = f.vms;
  registry::Registry& registry = f.registry;
  vms.RefillSpares();
  auto ready_spares = [&] {
    auto spares = registry.Spares("video");
    return std::count_if(spares.begin(), spares.end(), [](const registry::VmRecord& vm) {
      return vm.state == registry::VmState::kReady;
    });
  };
  REQUIRE(testing::WaitFor([&] { return ready_spares() == 2; }));

  absl::Time start = absl::Now();
  absl::StatusOr<std::string> ip;
  absl::Notification done;
  vms.EnsureVm("new", "video", vm::VmManager::Registration{}, [&](absl::StatusOr<std::string> r) {
    ip = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  REQUIRE(ip.ok());
  CHECK(absl::Now() - start < absl::Milliseconds(250));  // no 300 ms create on the way
  CHECK(vms.spares_claimed() == 1);
  CHECK(registry.ReadyAddresses("new", "video", absl::Now()) == std::vector<std::string>{*ip});
  // Refilled in the background.
  CHECK(testing::WaitFor([&] { return ready_spares() == 2; }));
  CHECK(f.fake.creates == 3);
}

int LiveSpares(const registry::Registry& registry) {
  int n = 0;
  for (const registry::VmRecord& vm : registry.Spares("video")) {
    n += vm.state == registry::VmState::kReady;
  }
  return n;
}

TEST_CASE("adaptive warm spares follow the arrivals, are taken over, refilled and drained") {
  World w(Scaler::Mode::kReactive, 20, 1000, nullptr, absl::FromUnixSeconds(1'000'000), {},
          /*pool_sparse=*/true, /*adaptive_spares=*/true);
  // Bucket 1: three first-time profiles allocate (three arrivals).
  for (const char* cpt : {"a", "b", "c"}) {
    w.Register(cpt);
    absl::Notification done;
    w.vms.EnsureVm(cpt, "video", std::nullopt, [&](absl::StatusOr<std::string>) { done.Notify(); });
    done.WaitForNotification();
  }
  CHECK(w.vms.spares_claimed() == 0);  // no spare yet: these were created
  w.clock.Advance(absl::Seconds(1));
  w.scaler.Tick();
  // Reactive: the last bucket's 3 arrivals -> 3 spares.
  CHECK(w.scaler.stats().spare_target == 3);
  REQUIRE(testing::WaitFor([&] { return LiveSpares(w.registry) == 3; }));

  // A fourth profile takes a ready spare over, and the spare is refilled.
  w.Register("d");
  absl::StatusOr<std::string> ip;
  absl::Notification done;
  w.vms.EnsureVm("d", "video", std::nullopt, [&](absl::StatusOr<std::string> r) {
    ip = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  REQUIRE(ip.ok());
  CHECK(w.vms.spares_claimed() == 1);
  CHECK(w.registry.ReadyAddresses("d", "video", w.clock.Now()) == std::vector<std::string>{*ip});
  REQUIRE(testing::WaitFor([&] { return LiveSpares(w.registry) == 3; }));

  // Wants so far: 3 (the first tick). Then 1 (d's arrival), then 0: the
  // target is the highest want of the last 3 buckets (the cooldown), and the
  // spares above it drain at once.
  std::vector<int> live, target;
  for (int t = 0; t < 4; ++t) {
    w.clock.Advance(absl::Seconds(1));
    w.scaler.Tick();
    live.push_back(LiveSpares(w.registry));
    target.push_back(static_cast<int>(w.scaler.stats().spare_target));
  }
  CHECK(target == std::vector<int>{3, 3, 1, 0});
  CHECK(live == std::vector<int>{3, 3, 1, 0});
  CHECK(w.scaler.stats().spares_drained == 3);
}

TEST_CASE("adaptive spares are ready for arrivals that come at one phase of a period") {
  // 4 first-time profiles arrive in bucket 30 of every 60 (the shipped access
  // log's burst at :05 each hour, at 60 s buckets), and one old profile asks
  // in that bucket too. Returns the spares the bursts of the last two cycles
  // took, the spare target in the quiet bucket 50 of each of those cycles, and
  // the old profile's model at the end.
  struct Out {
    std::vector<int64_t> claimed, quiet;
    std::string profile_model;
  };
  auto run = [](absl::Duration bucket, std::vector<int> periods) {
    World w(
        {.pool_cidr = "10.9.0.0/16", .limits = {.max_vms_per_profile = 20}, .manual_clock = true},
        {.mode = Scaler::Mode::kPredictive,
         .bucket = bucket,
         .lead_buffer = absl::Seconds(3),
         .refit_every = 5,
         .cooldown = 3,
         .periods = std::move(periods),
         .keep_warm = 2,
         .max_vms = 20,
         .budget = 1000,
         .requests_per_vm = {{"video", kPerVm}},
         .adaptive_spares = true});
    constexpr int kCycles = 7;
    int next = 0;
    Out out;
    w.Register("regular");
    for (int cycle = 0; cycle < kCycles; ++cycle) {
      for (int phase = 0; phase < 60; ++phase) {
        const int64_t claimed = w.vms.spares_claimed();
        for (int i = 0; phase == 30 && i < 4; ++i) {
          const std::string cpt = absl::StrCat("p", next++);
          w.Register(cpt);
          absl::Notification done;
          w.vms.EnsureVm(cpt, "video", std::nullopt,
                         [&](absl::StatusOr<std::string>) { done.Notify(); });
          done.WaitForNotification();
        }
        if (phase == 30 && cycle >= kCycles - 2) {
          out.claimed.push_back(w.vms.spares_claimed() - claimed);  // by the 4 arrivals
        }
        if (phase == 30) w.demand.Record("regular", "video");
        w.clock.Advance(bucket);
        w.scaler.Tick();
        // The refills run on the workers: wait until they are ready.
        REQUIRE(testing::WaitFor(
            [&] { return LiveSpares(w.registry) >= w.scaler.stats().spare_target; }));
        if (phase == 50 && cycle >= kCycles - 2) out.quiet.push_back(w.scaler.stats().spare_target);
      }
    }
    out.profile_model = w.scaler.Describe("regular", "video")->model;
    return out;
  };
  // 1 s buckets with the period configured: the seasonal sparse model asks
  // for the spares ahead of the burst, and holds none in the quiet part.
  Out configured = run(absl::Seconds(1), {60});
  CHECK(configured.claimed == std::vector<int64_t>{4, 4});
  CHECK(configured.quiet == std::vector<int64_t>{0, 0});
  // Without it, Croston's family spreads one burst in 60 buckets over all of
  // them: its bound stays at 0, and the bursts find no spare.
  Out without = run(absl::Seconds(1), {});
  CHECK(without.claimed == std::vector<int64_t>{0, 0});
  CHECK(without.quiet == std::vector<int64_t>{0, 0});
  // At 60 s buckets the hour is 60 buckets: the arrivals follow it with no
  // period configured; a single profile's series does not.
  Out clock = run(absl::Minutes(1), {});
  CHECK(clock.claimed == std::vector<int64_t>{4, 4});
  CHECK(clock.quiet == std::vector<int64_t>{0, 0});
  CHECK(clock.profile_model.find("SEASONAL-SPARSE") == std::string::npos);
  CHECK(configured.profile_model.find("SEASONAL-SPARSE") != std::string::npos);
}

TEST_CASE("Load again (a replica elected leader) replaces the history held with the checkpoints") {
  store::MemoryRegistryStore db;
  World w(Scaler::Mode::kPredictive, 20, 1000, &db, absl::FromUnixSeconds(1'000'000), {}, true,
          false, /*checkpoint_every=*/10);
  REQUIRE(w.scaler.Load().ok());
  w.Register("cpt");
  std::vector<double> sent;
  for (int t = 0; t < 13; ++t) {  // the 10th bucket ends on a checkpoint, the last 3 do not
    sent.push_back(10 + t);
    w.Bucket("cpt", static_cast<int>(sent.back()));
  }
  REQUIRE(w.scaler.Describe("cpt", "video")->history == sent);
  // What the store holds (another leader's checkpoints) wins over this scaler's memory.
  REQUIRE(w.scaler.Load().ok());
  auto v = w.scaler.Describe("cpt", "video");
  REQUIRE(v.ok());
  CHECK(v->history == std::vector<double>(sent.begin(), sent.begin() + 10));
  CHECK(v->model == "none yet");
  w.Bucket("cpt", 7);  // and goes on from there: the buckets not checkpointed read as zeros
  v = w.scaler.Describe("cpt", "video");
  REQUIRE(v.ok());
  REQUIRE(v->history.size() == 14);
  CHECK(v->history[10] == 0);
  CHECK(v->history.back() == 7);
}

TEST_CASE(
    "every bucket is checkpointed: a crash right after a bucket ends keeps it; only series with "
    "requests write") {
  store::MemoryRegistryStore db;
  constexpr int kSeries = 1'000, kActive = 100;
  // 26 characters, as a default CPT.
  auto cpt = [](int i) { return absl::StrFormat("cpt%023d", i); };
  std::vector<double> sent;
  {
    World w(Scaler::Mode::kReactive, 20, 0, &db);  // budget 0: only the counts matter
    REQUIRE(w.scaler.Load().ok());
    for (int i = 0; i < kSeries; ++i) w.Register(cpt(i));
    // One bucket with requests for every series, so all have a history.
    for (int i = 0; i < kSeries; ++i) w.demand.Record(cpt(i), "video", 1);
    w.clock.Advance(absl::Seconds(1));
    w.scaler.Tick();
    sent.push_back(1);
    const Scaler::Stats before = w.scaler.stats();
    CHECK(before.checkpoint_puts == kSeries);
    // Then an hour of buckets in which only kActive of them have requests.
    constexpr int kBuckets = 60;
    for (int t = 0; t < kBuckets; ++t) {
      for (int i = 0; i < kActive; ++i) w.demand.Record(cpt(i), "video", 10 + t);
      w.clock.Advance(absl::Seconds(1));
      w.scaler.Tick();
      sent.push_back(10 + t);
    }
    const Scaler::Stats after = w.scaler.stats();
    CHECK(after.checkpoint_errors == 0);
    const double puts = double(after.checkpoint_puts - before.checkpoint_puts) / kBuckets;
    const double bytes = double(after.checkpoint_bytes - before.checkpoint_bytes) / kBuckets;
    const double txns = double(after.checkpoint_txns - before.checkpoint_txns) / kBuckets;
    CHECK(puts == kActive);  // idle series write nothing
    WARN(kSeries << " series, " << kActive
                 << " with requests in every bucket, over an hour: " << puts << " puts per bucket, "
                 << bytes << " bytes of keys and values per bucket (" << bytes / kActive
                 << " per series with requests), " << txns
                 << " transactions per bucket; once an hour one delete per series");
  }  // no Stop: as kill -9 right after the last bucket ended
  World w(Scaler::Mode::kReactive, 20, 0, &db, absl::FromUnixSeconds(1'000'000 + 61));
  for (int i = 0; i < kSeries; ++i) w.Register(cpt(i));
  REQUIRE(w.scaler.Load().ok());
  auto v = w.scaler.Describe(cpt(0), "video");
  REQUIRE(v.ok());
  CHECK(v->history == sent);  // the last bucket too
  v = w.scaler.Describe(cpt(999), "video");
  REQUIRE(v.ok());
  CHECK(v->history.front() == 1);
}

TEST_CASE("checkpoint transactions hold at most txn_ops ops (etcd: 128)") {
  store::MemoryRegistryStore db;
  World w(
      testing::VmFixture::Options{.pool_cidr = "10.9.0.0/16",
                                  .start = absl::FromUnixSeconds(1'000'000)},
      Scaler::Options{
          .mode = Scaler::Mode::kReactive, .bucket = absl::Seconds(1), .txn_ops = 100, .budget = 0},
      &db);
  REQUIRE(w.scaler.Load().ok());
  for (int i = 0; i < 250; ++i) w.Register("cpt" + std::to_string(i));
  for (int i = 0; i < 250; ++i) w.demand.Record("cpt" + std::to_string(i), "video", 1);
  w.clock.Advance(absl::Seconds(1));
  w.scaler.Tick();
  CHECK(w.scaler.stats().checkpoint_txns == 3);
  CHECK(w.scaler.stats().checkpoint_puts == 250);
}

}  // namespace
}  // namespace ppe::scaler
